"""Pure logic: SigV4 payload signing, multipart framing, DICOM JSON and STOW-RS results.

Nothing in this package touches the network, the file system or Airflow, so every piece is testable alone.
"""
