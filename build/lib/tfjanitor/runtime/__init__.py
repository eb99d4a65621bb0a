"""What each Lambda function calls: settings, wiring, telemetry and observability objects."""
