"""I/O over the pure core: reading DICOM sources, streaming request bodies, signing and sending them."""
