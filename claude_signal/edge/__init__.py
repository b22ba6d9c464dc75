"""The Signal edge: read Signal, journal every message, publish it by task name. Never imports the database or
Claude."""
