"""The device gateway: an MQTT 3.1.1/5 server with AWS IoT Core's broker behaviour."""
