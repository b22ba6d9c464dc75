"""Driving the ``claude`` CLI: a transport that moves lines, a parser that types them, a driver per turn."""
