# One image for the listener, the workers, migrations and Flower. Workers also need Claude Code itself.
FROM python:3.11-slim
RUN apt-get update && apt-get install -y --no-install-recommends nodejs npm git \
    && npm install -g @anthropic-ai/claude-code \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY pyproject.toml README.md celeryconfig.py ./
COPY claude_signal ./claude_signal
COPY tasks ./tasks
RUN pip install --no-cache-dir '.[flower]'
# Directories that named volumes mount over must exist with the right owner, or the volume is root's.
RUN useradd --create-home claude \
    && mkdir -p /home/claude/.claude-signal /home/claude/.claude /home/claude/projects \
    && chown -R claude:claude /home/claude
USER claude
ENV CLAUDE_SIGNAL_HOME=/home/claude/.claude-signal
CMD ["claude-signal", "worker"]
