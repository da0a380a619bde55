"""AWS IoT Jobs: the device-side MQTT API and the control plane for fleet OTA."""
