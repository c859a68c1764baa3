// AWS wire client.
