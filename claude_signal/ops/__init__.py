"""Operations: the command line, the supervisor, the embedded Redis, beat."""
