module glimpse.local/clients/go

go 1.26.0

require (
	buf.build/gen/go/bufbuild/protovalidate/protocolbuffers/go v1.36.12-20260825204119-511051f7f437.2
	connectrpc.com/connect v1.21.1
	golang.org/x/net v0.57.0
	google.golang.org/genproto/googleapis/api v0.0.0-20261123191846-1e707ab9fbc2
	google.golang.org/genproto/googleapis/rpc v0.0.0-20261123191846-1e707ab9fbc2
	google.golang.org/protobuf v1.36.12
)

require golang.org/x/text v0.40.0 // indirect
