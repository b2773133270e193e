package source

import (
	"context"
	"errors"
	"fmt"
	"sync"

	grpccodes "google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/danube-messaging/danube-connect-go/libs/danube"
	"github.com/danube-messaging/danube-connect-go/libs/runtime/schema"
)

// Schemas is SCHEMA_*: how a source's records get their schema.
type Schemas struct {
	Type     schema.Type
	Subject  func(topic string) string // the subject of topic's schema
	File     *schema.Schema            // SCHEMA_FILE's, for records that bring none; nil: none
	Compat   string                    // set on the subjects the source registers; "": keep the registry's
	Validate bool                      // check each record before it is published
}

// stamp is a registered schema version as records are stamped and checked with it.
type stamp struct {
	subject string
	version uint32
	check   *schema.Validator
}

// Check reports why payload does not follow the stamp's schema.
func (s *stamp) Check(payload []byte) error {
	if err := s.check.Validate(payload); err != nil {
		return fmt.Errorf("schema subject %q version %d: %w", s.subject, s.version, err)
	}
	return nil
}

// registry registers the schemas records bring (or SCHEMA_FILE's) under their topics' subjects,
// once per subject and schema text, and hands out the stamps.
type registry struct {
	cfg   *Schemas
	name  string // CONNECTOR_NAME: CreatedBy of what it registers
	reg   *danube.SchemaRegistry
	retry func(ctx context.Context, what string, retryable func(error) bool, op func(context.Context) error) error
	fatal func(error) error

	mu      sync.Mutex
	byValue map[stampKey]*stamp // a Schema value the source brought, per subject
	byText  map[textKey]*stamp  // the same text in another value
	latest  map[string]*stamp   // subject → its latest version, for records that bring no schema
	compat  map[string]bool     // subjects whose compatibility was set
}

type stampKey struct {
	subject string
	s       *schema.Schema
}

type textKey struct{ subject, fingerprint string }

func newRegistry(cfg *Schemas, name string, h *Host) *registry {
	return &registry{cfg: cfg, name: name, reg: h.Client.SchemaRegistry(), retry: h.Retry, fatal: h.Fatal,
		byValue: map[stampKey]*stamp{}, byText: map[textKey]*stamp{}, latest: map[string]*stamp{}, compat: map[string]bool{}}
}

// stamp returns the stamp of a record for topic that brings s (nil: SCHEMA_FILE's, or the
// subject's latest version in the registry), registering s first when it is new.
func (r *registry) stamp(ctx context.Context, topic string, s *schema.Schema) (*stamp, error) {
	subject := r.cfg.Subject(topic)
	if s == nil {
		s = r.cfg.File
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if s == nil {
		return r.latestOf(ctx, subject)
	}
	if st := r.byValue[stampKey{subject, s}]; st != nil {
		return st, nil
	}
	tk := textKey{subject, s.Fingerprint()}
	st := r.byText[tk]
	if st == nil {
		var err error
		if st, err = r.register(ctx, subject, s); err != nil {
			return nil, err
		}
		r.byText[tk] = st
	}
	r.byValue[stampKey{subject, s}] = st
	return st, nil
}

// register registers s under subject (the registry answers with the existing version for a text
// it has) and compiles its validator. A schema the registry refuses (incompatible with the
// subject's latest version, invalid) stops the source: every later record would need it.
func (r *registry) register(ctx context.Context, subject string, s *schema.Schema) (*stamp, error) {
	check, err := s.Compile()
	if err != nil {
		return nil, r.fatal(fmt.Errorf("runtime: schema for subject %q: %w", subject, err))
	}
	if s.Type != r.cfg.Type {
		return nil, r.fatal(fmt.Errorf("runtime: a record brings a %s schema for subject %q, but SCHEMA_TYPE=%s", s.Type, subject, r.cfg.Type))
	}
	r.setCompat(ctx, subject, false)
	var reg danube.RegisteredSchema
	err = r.retry(ctx, "register schema", transient, func(ctx context.Context) (err error) {
		reg, err = r.reg.Register(ctx, subject, s.Type.Danube(), s.Text, &danube.RegisterOptions{CreatedBy: r.name})
		return err
	})
	if err != nil {
		if ctx.Err() == nil && !transient(err) {
			err = r.fatal(fmt.Errorf("runtime: the schema registry refused a new version of subject %q: %w (a change "+
				"its compatibility mode does not allow: set SCHEMA_COMPATIBILITY, or change the subject)", subject, err))
		}
		return nil, err
	}
	r.setCompat(ctx, subject, true)
	return &stamp{subject: subject, version: reg.Version, check: check}, nil
}

// setCompat sets SCHEMA_COMPATIBILITY on subject once: before its next version is registered
// when it exists (created: false), else right after its first (created: true).
func (r *registry) setCompat(ctx context.Context, subject string, created bool) {
	if r.cfg.Compat == "" || r.compat[subject] {
		return
	}
	err := r.reg.SetCompatibility(ctx, subject, r.cfg.Compat)
	if err == nil || created {
		r.compat[subject] = err == nil
	}
}

// latestOf returns the stamp of subject's latest version: records that bring no schema follow
// what is registered.
func (r *registry) latestOf(ctx context.Context, subject string) (*stamp, error) {
	if st := r.latest[subject]; st != nil {
		return st, nil
	}
	var latest *danube.Schema
	err := r.retry(ctx, "read schema", transient, func(ctx context.Context) (err error) {
		latest, err = r.reg.Latest(ctx, subject)
		return err
	})
	switch {
	case status.Code(err) == grpccodes.NotFound:
		return nil, r.fatal(fmt.Errorf("runtime: SCHEMA_TYPE=%s, but subject %q is not registered and neither SCHEMA_FILE "+
			"nor the connector gives a schema: register it first, or set SCHEMA_FILE", r.cfg.Type, subject))
	case err != nil:
		return nil, err
	}
	if latest.Type != r.cfg.Type.Danube() {
		return nil, r.fatal(fmt.Errorf("runtime: subject %q is %s in the registry, but SCHEMA_TYPE=%s", subject, latest.Type, r.cfg.Type))
	}
	s := &schema.Schema{Type: r.cfg.Type, Text: latest.Definition}
	check, err := s.Compile()
	if err != nil {
		return nil, r.fatal(fmt.Errorf("runtime: subject %q version %d: %w", subject, latest.Version, err))
	}
	st := &stamp{subject: subject, version: latest.Version, check: check}
	r.latest[subject] = st
	return st, nil
}

// transient reports whether a registry call may pass when tried again (the broker is away); a
// refusal of the schema itself (INTERNAL for an incompatible one), a missing subject or bad
// credentials may not.
func transient(err error) bool {
	switch status.Code(err) {
	case grpccodes.Internal, grpccodes.InvalidArgument, grpccodes.NotFound, grpccodes.FailedPrecondition,
		grpccodes.PermissionDenied, grpccodes.Unauthenticated, grpccodes.AlreadyExists, grpccodes.Canceled:
		return false
	}
	return !errors.Is(err, context.Canceled)
}
