package devbroker

import (
	"context"

	"google.golang.org/grpc"
)

func (f *faults) unary(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
	if err := f.take(info.FullMethod); err != nil {
		return nil, err
	}
	return h(ctx, req)
}

func (f *faults) stream(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, h grpc.StreamHandler) error {
	if err := f.take(info.FullMethod); err != nil {
		return err
	}
	return h(srv, ss)
}
