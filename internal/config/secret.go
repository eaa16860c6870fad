// Package config provides the mechanics every part of kdbridge's configuration shares:
// strict YAML decoding with line numbers, ${VAR} expansion, secrets that never print,
// durations, and problems reported all at once. The schema itself is composed in
// cmd/kdbridge from the Config types that live next to the code consuming them.
package config

import (
	"fmt"
	"log/slog"
	"strings"

	"go.yaml.in/yaml/v3"
)

const redacted = "<secret>"

// Secret is a string that never prints: String, LogValue, fmt verbs and every marshalled
// form show "<secret>". Use Reveal where the value is really needed.
type Secret string

// Reveal returns the secret value.
func (s Secret) Reveal() string { return string(s) }

// IsSet reports whether the secret has a value.
func (s Secret) IsSet() bool { return s != "" }

// String implements fmt.Stringer.
func (s Secret) String() string {
	if s == "" {
		return ""
	}
	return redacted
}

// GoString implements fmt.GoStringer, so %#v redacts too.
func (s Secret) GoString() string { return fmt.Sprintf("config.Secret(%q)", s.String()) }

// Format redacts under every verb (%s, %v, %q, %x...).
func (s Secret) Format(f fmt.State, verb rune) {
	switch verb {
	case 'q':
		fmt.Fprintf(f, "%q", s.String())
	default:
		fmt.Fprint(f, s.String())
	}
}

// LogValue implements slog.LogValuer.
func (s Secret) LogValue() slog.Value { return slog.StringValue(s.String()) }

// MarshalText implements encoding.TextMarshaler (JSON and YAML encoders use it).
func (s Secret) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// MarshalYAML implements yaml.Marshaler.
func (s Secret) MarshalYAML() (any, error) { return s.String(), nil }

// UnmarshalYAML implements yaml.Unmarshaler, so that MarshalText does not get a twin.
func (s *Secret) UnmarshalYAML(n *yaml.Node) error {
	var v string
	if err := n.Decode(&v); err != nil {
		return err
	}
	*s = Secret(v)
	return nil
}

// Secrets is a list of secrets; YAML accepts one string or a list. It exists for rotation:
// every secret in the list is used.
type Secrets []Secret

// UnmarshalYAML accepts a scalar or a sequence.
func (s *Secrets) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.ScalarNode {
		var one Secret
		if err := n.Decode(&one); err != nil {
			return err
		}
		*s = Secrets{one}
		return nil
	}
	var many []Secret
	if err := n.Decode(&many); err != nil {
		return err
	}
	*s = many
	return nil
}

// String implements fmt.Stringer.
func (s Secrets) String() string {
	parts := make([]string, len(s))
	for i := range s {
		parts[i] = s[i].String()
	}
	return "[" + strings.Join(parts, " ") + "]"
}

// LogValue implements slog.LogValuer.
func (s Secrets) LogValue() slog.Value { return slog.StringValue(s.String()) }

// Redact replaces every set secret in text with "<secret>". Use it on error text that may
// quote a server's answer or a URL carrying a token.
func Redact(text string, secrets ...string) string {
	for _, s := range secrets {
		if len(s) >= 4 {
			text = strings.ReplaceAll(text, s, redacted)
		}
	}
	return text
}
