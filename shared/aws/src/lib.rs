//! AWS adapters: EC2 launch and catalog, SSM AMI aliases, DynamoDB claim store and lease, SQS.
