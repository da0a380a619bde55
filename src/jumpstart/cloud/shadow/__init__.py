"""AWS IoT Device Shadow: the document engine (pure), topics, stores and the service."""
