package glimpse

// Version is the API release this module was generated from: proto/VERSION, whose release is
// tagged v<Version> and clients/go/v<Version> (scripts/release.sh); scripts/check-proto.sh fails
// when the two differ. Each request's User-Agent names it.
const Version = "0.1.0"
