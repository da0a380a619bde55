"""Manufacturing (guide chapter 8): factory data for many devices at once.

``tables`` reads mfg_gen's config and values CSVs; ``generate`` turns them into one intermediate
CSV, one NVS image (and with encryption one key file) per device, laid out and named as
ESP-IDF's ``tools/mass_mfg/mfg_gen.py`` writes them, byte for byte.
"""
