# The API release these messages were generated from: proto/VERSION, whose release is tagged
# v<version> (scripts/release.sh); scripts/check-proto.sh fails when the two differ.
__version__ = "0.1.0"
