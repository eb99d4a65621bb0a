"""The AWS room: every boto3 and botocore call the Lambda path makes. Imports only the pure base."""
