"""The local AWS IoT compatible device cloud: registry and CA, device gateway (MQTT), shadow
and jobs engines, REST API."""
