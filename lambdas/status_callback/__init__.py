"""Status callback: stores device connection status and shadow state from the two SNS topics, optionally a webhook."""
