"""AWS adapters: EventBridge, SNS, Step Functions and SQS behind paymesh's ports."""
