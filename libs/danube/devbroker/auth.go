package devbroker

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// authenticator enforces the real broker's `auth.mode: tls` credentials check:
// `authorization: Bearer <HS256 JWT>` with a valid signature and an unexpired
// `exp`. Unlike the upstream broker it does NOT trust `x-danube-internal-broker`.
type authenticator struct {
	enabled bool
	secret  []byte
	now     func() time.Time
}

func (a *authenticator) check(ctx context.Context) error {
	if !a.enabled {
		return nil
	}
	md, _ := metadata.FromIncomingContext(ctx)
	vals := md.Get("authorization")
	if len(vals) == 0 {
		return status.Error(codes.Unauthenticated, "Authentication credentials are missing")
	}
	v := vals[0]
	var token string
	switch {
	case strings.HasPrefix(v, "Bearer "):
		token = v[len("Bearer "):]
	case strings.HasPrefix(v, "bearer "):
		token = v[len("bearer "):]
	default:
		return status.Error(codes.Unauthenticated, "Authentication metadata is invalid")
	}
	now := time.Now
	if a.now != nil {
		now = a.now
	}
	if !validJWT(token, a.secret, now()) {
		return status.Error(codes.Unauthenticated, "Invalid token")
	}
	return nil
}

// validJWT verifies an HS256 JWT's signature and its required `exp` claim
// (jsonwebtoken's Validation::default, which allows 60 s of leeway).
func validJWT(token string, secret []byte, now time.Time) bool {
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return false
	}
	enc := base64.RawURLEncoding
	hdrJSON, err := enc.DecodeString(parts[0])
	if err != nil {
		return false
	}
	var hdr struct {
		Alg string `json:"alg"`
	}
	if json.Unmarshal(hdrJSON, &hdr) != nil || hdr.Alg != "HS256" {
		return false
	}
	sig, err := enc.DecodeString(parts[2])
	if err != nil {
		return false
	}
	mac := hmac.New(sha256.New, secret)
	mac.Write([]byte(parts[0] + "." + parts[1]))
	if !hmac.Equal(sig, mac.Sum(nil)) {
		return false
	}
	claimsJSON, err := enc.DecodeString(parts[1])
	if err != nil {
		return false
	}
	var claims struct {
		Exp *float64 `json:"exp"`
	}
	if json.Unmarshal(claimsJSON, &claims) != nil || claims.Exp == nil {
		return false
	}
	const leeway = 60
	return float64(now.Unix()) <= *claims.Exp+leeway
}

func (a *authenticator) unary(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
	if err := a.check(ctx); err != nil {
		return nil, err
	}
	return h(ctx, req)
}

func (a *authenticator) stream(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, h grpc.StreamHandler) error {
	if err := a.check(ss.Context()); err != nil {
		return err
	}
	return h(srv, ss)
}
