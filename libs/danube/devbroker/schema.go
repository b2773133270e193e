package devbroker

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"time"
	"unicode/utf8"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/danube-messaging/danube-connect-go/libs/danube/devbroker/internal/schemareg"
	pb "github.com/danube-messaging/danube-connect-go/proto/danubepb"
	spb "github.com/danube-messaging/danube-connect-go/proto/schemapb"
)

// normalizePolicy parses a topic validation policy, case-insensitively.
func normalizePolicy(p string) (string, bool) {
	switch strings.ToLower(p) {
	case "none", "warn", "enforce":
		return strings.ToLower(p), true
	}
	return "", false
}

// validateMessage applies the topic's validation policy (TopicSchemaContext::validate_message).
func (c *core) validateMessage(t *topic, m *pb.StreamMessage) error {
	if t.validation == "none" {
		return nil
	}
	var problem string
	switch {
	case t.schemaSubject == "":
		if t.validation == "enforce" {
			problem = "topic has no schema subject configured"
		}
	case m.SchemaId == nil:
		problem = "message has no schema_id"
	default:
		s := c.schemas.Subject(t.schemaSubject)
		if s == nil || s.ID != m.GetSchemaId() {
			problem = fmt.Sprintf("schema_id %d does not belong to subject %s", m.GetSchemaId(), t.schemaSubject)
		} else if t.payloadValidation {
			problem = validatePayload(s, m)
		}
	}
	if problem == "" {
		return nil
	}
	if t.validation == "enforce" {
		return fmt.Errorf("schema validation failed: %s", problem)
	}
	c.log.Warn("schema validation failed (warn policy)", "topic", t.name, "problem", problem)
	return nil
}

func validatePayload(s *schemareg.Subject, m *pb.StreamMessage) string {
	sv := s.Latest()
	if m.SchemaVersion != nil {
		sv = s.Version(m.GetSchemaVersion())
	}
	if sv == nil {
		return fmt.Sprintf("unknown schema version %d", m.GetSchemaVersion())
	}
	switch sv.Type {
	case "json_schema":
		var v map[string]any
		if err := json.Unmarshal(m.GetPayload(), &v); err != nil {
			return "payload is not a JSON object: " + err.Error()
		}
		var js struct {
			Required []string `json:"required"`
		}
		_ = json.Unmarshal(sv.Definition, &js)
		for _, f := range js.Required {
			if _, ok := v[f]; !ok {
				return fmt.Sprintf("payload misses required field %q", f)
			}
		}
	case "string":
		if !utf8.Valid(m.GetPayload()) {
			return "payload is not valid UTF-8"
		}
	}
	return ""
}

// schemaAPI serves danube_schema.SchemaRegistry on both ports.
type schemaAPI struct {
	spb.UnimplementedSchemaRegistryServer
	c *core
}

func registerSchemaAPI(s *grpc.Server, c *core) {
	spb.RegisterSchemaRegistryServer(s, &schemaAPI{c: c})
}

func (a *schemaAPI) RegisterSchema(_ context.Context, req *spb.RegisterSchemaRequest) (*spb.RegisterSchemaResponse, error) {
	c := a.c
	c.mu.Lock()
	defer c.mu.Unlock()
	undo := c.schemasUndo()
	s, sv, isNew, err := c.schemas.Register(req.GetSubject(), req.GetSchemaType(), req.GetSchemaDefinition(),
		req.GetDescription(), req.GetCreatedBy(), req.GetTags(), time.Now())
	if err != nil {
		return nil, status.Errorf(codes.Internal, "Failed to register schema: %v", err)
	}
	if isNew {
		if err := c.putSchemas(undo); err != nil {
			return nil, err
		}
	}
	return &spb.RegisterSchemaResponse{SchemaId: s.ID, Version: sv.Version, IsNewVersion: isNew, Fingerprint: sv.Fingerprint}, nil
}

func schemaResponse(s *schemareg.Subject, sv *schemareg.Version) *spb.GetSchemaResponse {
	return &spb.GetSchemaResponse{
		SchemaId:          s.ID,
		Version:           sv.Version,
		Subject:           s.Name,
		SchemaType:        sv.Type,
		SchemaDefinition:  schemareg.Envelope(sv),
		Description:       sv.Description,
		CreatedAt:         sv.CreatedAt,
		CreatedBy:         sv.CreatedBy,
		Tags:              sv.Tags,
		Fingerprint:       sv.Fingerprint,
		CompatibilityMode: s.Compat,
	}
}

func (a *schemaAPI) GetSchema(_ context.Context, req *spb.GetSchemaRequest) (*spb.GetSchemaResponse, error) {
	c := a.c
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.schemas.ByID(req.GetSchemaId())
	if s == nil {
		return nil, status.Errorf(codes.NotFound, "Schema not found for ID: %d", req.GetSchemaId())
	}
	sv := s.Latest()
	if req.Version != nil {
		sv = s.Version(req.GetVersion())
	}
	if sv == nil {
		return nil, status.Errorf(codes.NotFound, "Schema not found for ID: %d", req.GetSchemaId())
	}
	return schemaResponse(s, sv), nil
}

func (a *schemaAPI) GetLatestSchema(_ context.Context, req *spb.GetLatestSchemaRequest) (*spb.GetSchemaResponse, error) {
	c := a.c
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.schemas.Subject(req.GetSubject())
	var sv *schemareg.Version
	if s != nil {
		sv = s.Latest()
	}
	if sv == nil {
		return nil, status.Errorf(codes.NotFound, "Schema not found for subject: %s", req.GetSubject())
	}
	return schemaResponse(s, sv), nil
}

func (a *schemaAPI) ListVersions(_ context.Context, req *spb.ListVersionsRequest) (*spb.ListVersionsResponse, error) {
	c := a.c
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.schemas.Subject(req.GetSubject())
	if s == nil {
		return nil, status.Errorf(codes.NotFound, "Subject not found: %s", req.GetSubject())
	}
	out := &spb.ListVersionsResponse{}
	for _, sv := range s.Versions {
		if sv.Deleted {
			continue
		}
		out.Versions = append(out.Versions, &spb.SchemaVersionInfo{
			Version: sv.Version, CreatedAt: sv.CreatedAt, CreatedBy: sv.CreatedBy,
			Description: sv.Description, Fingerprint: sv.Fingerprint, SchemaId: s.ID,
		})
	}
	return out, nil
}

func (a *schemaAPI) CheckCompatibility(_ context.Context, req *spb.CheckCompatibilityRequest) (*spb.CheckCompatibilityResponse, error) {
	c := a.c
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.schemas.Subject(req.GetSubject())
	if s == nil || s.Latest() == nil {
		return nil, status.Errorf(codes.Internal, "Failed to check compatibility: subject %s not found", req.GetSubject())
	}
	mode := s.Compat
	if req.CompatibilityMode != nil {
		// Like upstream, an unparsable override falls back to the subject's mode.
		if m, ok := schemareg.NormalizeCompat(req.GetCompatibilityMode()); ok {
			mode = m
		}
	}
	typ, err := schemareg.NormalizeType(req.GetSchemaType())
	if err == nil {
		_, err = schemareg.Fingerprint(typ, req.GetNewSchemaDefinition()) // parses the definition
	}
	if err != nil {
		return nil, status.Errorf(codes.Internal, "Failed to check compatibility: %v", err)
	}
	l := s.Latest()
	errs := schemareg.Compatible(l.Type, typ, mode, l.Definition, req.GetNewSchemaDefinition())
	return &spb.CheckCompatibilityResponse{IsCompatible: len(errs) == 0, Errors: errs}, nil
}

func (a *schemaAPI) DeleteSchemaVersion(_ context.Context, req *spb.DeleteSchemaVersionRequest) (*spb.DeleteSchemaVersionResponse, error) {
	c := a.c
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.schemas.Subject(req.GetSubject())
	var sv *schemareg.Version
	if s != nil {
		sv = s.Version(req.GetVersion())
	}
	if sv == nil {
		return nil, status.Errorf(codes.Internal, "Failed to delete schema version: version %d of subject %s not found", req.GetVersion(), req.GetSubject())
	}
	undo := c.schemasUndo()
	sv.Deleted = true
	if err := c.putSchemas(undo); err != nil {
		return nil, err
	}
	return &spb.DeleteSchemaVersionResponse{Success: true, Message: fmt.Sprintf("Deleted version %d for subject %s", sv.Version, s.Name)}, nil
}

func (a *schemaAPI) SetCompatibilityMode(_ context.Context, req *spb.SetCompatibilityModeRequest) (*spb.SetCompatibilityModeResponse, error) {
	c := a.c
	m, ok := schemareg.NormalizeCompat(req.GetCompatibilityMode())
	if !ok {
		return nil, status.Errorf(codes.InvalidArgument, "Invalid compatibility mode: %s", req.GetCompatibilityMode())
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.schemas.Subject(req.GetSubject())
	if s == nil {
		return nil, status.Errorf(codes.Internal, "Failed to set compatibility mode: subject %s not found", req.GetSubject())
	}
	undo := c.schemasUndo()
	s.Compat = m
	if err := c.putSchemas(undo); err != nil {
		return nil, err
	}
	return &spb.SetCompatibilityModeResponse{Success: true,
		Message: fmt.Sprintf("Set compatibility mode to %s for subject %s", req.GetCompatibilityMode(), s.Name)}, nil
}

func errBadPolicy(p string) error {
	return status.Errorf(codes.InvalidArgument, "Invalid validation policy: '%s'. Must be 'none', 'warn', or 'enforce'", p)
}

func errTopicNotHere(name string) error {
	return status.Errorf(codes.NotFound, "Topic '%s' not found on this broker", name)
}

// policyName is the Debug form the real broker prints in messages.
func policyName(p string) string {
	switch p {
	case "none":
		return "None"
	case "enforce":
		return "Enforce"
	}
	return "Warn"
}

func enabled(b bool) string {
	if b {
		return "enabled"
	}
	return "disabled"
}

func (a *schemaAPI) ConfigureTopicSchema(_ context.Context, req *spb.ConfigureTopicSchemaRequest) (*spb.ConfigureTopicSchemaResponse, error) {
	c := a.c
	pol, ok := normalizePolicy(req.GetValidationPolicy())
	if !ok {
		return nil, errBadPolicy(req.GetValidationPolicy())
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.schemas.Subject(req.GetSchemaSubject()) == nil {
		return nil, status.Errorf(codes.NotFound, "Schema subject '%s' not found in registry: subject does not exist", req.GetSchemaSubject())
	}
	t := c.topics[req.GetTopicName()]
	if t == nil {
		return nil, errTopicNotHere(req.GetTopicName())
	}
	old := *t.meta()
	t.schemaSubject = req.GetSchemaSubject()
	t.validation = pol
	t.payloadValidation = req.GetEnablePayloadValidation()
	if err := c.putTopic(t); err != nil {
		t.schemaSubject, t.validation, t.payloadValidation = old.SchemaSubject, old.Validation, old.PayloadValidation
		return nil, err
	}
	return &spb.ConfigureTopicSchemaResponse{Success: true, Message: fmt.Sprintf(
		"Topic '%s' configured with schema '%s', validation policy '%s', payload validation %s",
		t.name, t.schemaSubject, policyName(pol), enabled(t.payloadValidation))}, nil
}

func (a *schemaAPI) UpdateTopicValidationPolicy(_ context.Context, req *spb.UpdateTopicValidationPolicyRequest) (*spb.UpdateTopicValidationPolicyResponse, error) {
	c := a.c
	pol, ok := normalizePolicy(req.GetValidationPolicy())
	if !ok {
		return nil, errBadPolicy(req.GetValidationPolicy())
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	t := c.topics[req.GetTopicName()]
	if t == nil {
		return nil, errTopicNotHere(req.GetTopicName())
	}
	if t.schemaSubject == "" {
		return nil, status.Errorf(codes.FailedPrecondition,
			"Topic '%s' has no schema subject configured. Use ConfigureTopicSchema first.", t.name)
	}
	old := *t.meta()
	t.validation = pol
	t.payloadValidation = req.GetEnablePayloadValidation()
	if err := c.putTopic(t); err != nil {
		t.validation, t.payloadValidation = old.Validation, old.PayloadValidation
		return nil, err
	}
	return &spb.UpdateTopicValidationPolicyResponse{Success: true, Message: fmt.Sprintf(
		"Validation policy updated to '%s', payload validation %s", policyName(pol), enabled(t.payloadValidation))}, nil
}

func (a *schemaAPI) GetTopicSchemaConfig(_ context.Context, req *spb.GetTopicSchemaConfigRequest) (*spb.GetTopicSchemaConfigResponse, error) {
	c := a.c
	c.mu.Lock()
	defer c.mu.Unlock()
	t := c.topics[req.GetTopicName()]
	if t == nil {
		return nil, errTopicNotHere(req.GetTopicName())
	}
	out := &spb.GetTopicSchemaConfigResponse{
		SchemaSubject:           t.schemaSubject,
		ValidationPolicy:        t.validation,
		EnablePayloadValidation: t.payloadValidation,
	}
	if s := c.schemas.Subject(t.schemaSubject); s != nil {
		out.SchemaId = s.ID
	}
	return out, nil
}

func (a *schemaAPI) ListSubjects(context.Context, *spb.ListSubjectsRequest) (*spb.ListSubjectsResponse, error) {
	c := a.c
	c.mu.Lock()
	defer c.mu.Unlock()
	out := &spb.ListSubjectsResponse{}
	for _, s := range c.schemas.Subjects {
		sum := &spb.SubjectSummary{Subject: s.Name, CompatibilityMode: s.Compat, SchemaId: s.ID}
		if l := s.Latest(); l != nil {
			sum.LatestVersion = l.Version
			sum.SchemaType = l.Type
			sum.Tags = l.Tags
		}
		out.Subjects = append(out.Subjects, sum)
	}
	sort.Slice(out.Subjects, func(i, j int) bool { return out.Subjects[i].Subject < out.Subjects[j].Subject })
	return out, nil
}
