"""Where bytes live: S3 (the one boto3 edge), local files with atomic writes, assumed roles."""
