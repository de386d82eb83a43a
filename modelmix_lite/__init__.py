"""modelmix_lite."""
