package config

import (
	"fmt"
	"io"
	"log/slog"
	"reflect"
	"strings"
	"text/tabwriter"
)

// Usage writes every variable of cfg with its type, default and description, generated from the
// struct tags so it always matches what Load reads.
func Usage(w io.Writer, cfg any) error {
	fields, ok := fieldsOf(cfg)
	if !ok {
		return fmt.Errorf("config: Usage needs a non-nil pointer to a struct, got %T", cfg)
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "VARIABLE\tTYPE\tDEFAULT\tDESCRIPTION")
	declared := map[string]bool{}
	for _, f := range fields {
		declared[f.Key] = true
	}
	for _, f := range fields {
		def := f.Default
		switch {
		case f.Required:
			def = "(required)"
		case !f.HasDefault:
			def = "-"
		case def == "":
			def = `""`
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", f.Key, f.Type, def, f.Desc)
		if f.Secret && !declared[f.Key+"_FILE"] {
			fmt.Fprintf(tw, "%s_FILE\tpath\t-\tfile holding %s (alternative to setting it directly)\n", f.Key, f.Key)
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	written := map[string]bool{} // two variables of one kind (a bridge's import and export steps) share one text
	for _, x := range expanders(fields) {
		var b strings.Builder
		if err := x.ExpandUsage(&b); err != nil {
			return err
		}
		if !written[b.String()] {
			written[b.String()] = true
			if _, err := io.WriteString(w, b.String()); err != nil {
				return err
			}
		}
	}
	return nil
}

// Print writes the effective configuration as NAME=value lines, secrets redacted, in declaration
// order, so `--print-config` output can be pasted back into an env file (minus the secrets).
func Print(w io.Writer, cfg any) error {
	fields, ok := fieldsOf(cfg)
	if !ok {
		return fmt.Errorf("config: Print needs a non-nil pointer to a struct, got %T", cfg)
	}
	for _, f := range fields {
		if _, err := fmt.Fprintf(w, "%s=%s\n", f.Key, format(f.value)); err != nil {
			return err
		}
	}
	for _, x := range expanders(fields) {
		for _, kv := range x.Expanded() {
			if _, err := fmt.Fprintf(w, "%s=%s\n", kv[0], kv[1]); err != nil {
				return err
			}
		}
	}
	return nil
}

func format(v reflect.Value) string {
	if v.Kind() == reflect.Slice {
		parts := make([]string, v.Len())
		for i := range parts {
			parts[i] = format(v.Index(i))
		}
		return strings.Join(parts, ",")
	}
	return fmt.Sprint(v.Interface())
}

// LogValue renders the effective configuration as a slog group of NAME=value attributes, secrets
// redacted, for the startup log line.
func LogValue(cfg any) slog.Value {
	fields, _ := fieldsOf(cfg)
	attrs := make([]slog.Attr, 0, len(fields))
	for _, f := range fields {
		attrs = append(attrs, slog.String(f.Key, format(f.value)))
	}
	for _, x := range expanders(fields) {
		for _, kv := range x.Expanded() {
			attrs = append(attrs, slog.String(kv[0], kv[1]))
		}
	}
	return slog.GroupValue(attrs...)
}
