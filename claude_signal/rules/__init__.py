"""Pure rules: commands as typed values, every sentence the bot says, batching, chunking, ids, schedule times. No
I/O."""
