"""Where DICOM files come from: local files and S3 objects, what a user's ``source`` names, and the header facts
(UIDs, transfer syntax) read from each file before it is sent."""
