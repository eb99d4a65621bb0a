"""The local stack runner and the embedded emulator. Never imported by the Lambda path."""
