package config

import (
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Problem is one thing wrong with a configuration: where (line, key path) and what.
type Problem struct {
	Line int    // 1-based line in the YAML file; 0 when unknown
	Path string // key path such as sinks[1].url; "" for the whole file
	Msg  string

	root bool // a root cause (a missing variable): other problems on its line restate it
}

// Error implements error: "line 12: sinks[1].url: not an absolute http(s) URL".
func (p Problem) Error() string {
	var b strings.Builder
	if p.Line > 0 {
		fmt.Fprintf(&b, "line %d: ", p.Line)
	}
	if p.Path != "" {
		b.WriteString(p.Path)
		b.WriteString(": ")
	}
	b.WriteString(p.Msg)
	return b.String()
}

// Problems collects every problem found, so that a user sees them all at once.
type Problems []Problem

// Add records a problem.
func (ps *Problems) Add(line int, path, format string, args ...any) {
	*ps = append(*ps, Problem{Line: line, Path: path, Msg: fmt.Sprintf(format, args...)})
}

// Err returns nil when there are no problems, else an error listing them all, ordered by line.
func (ps Problems) Err() error {
	if len(ps) == 0 {
		return nil
	}
	rootLines := map[int]bool{}
	for _, p := range ps {
		if p.root && p.Line > 0 {
			rootLines[p.Line] = true
		}
	}
	var sorted Problems
	for _, p := range ps {
		if p.root || !rootLines[p.Line] {
			sorted = append(sorted, p)
		}
	}
	sort.SliceStable(sorted, func(i, j int) bool { return sorted[i].Line < sorted[j].Line })
	return &Error{Problems: sorted}
}

// Error is the error a configuration with problems produces.
type Error struct{ Problems Problems }

func (e *Error) Error() string {
	lines := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		lines[i] = p.Error()
	}
	return fmt.Sprintf("%d configuration problem(s):\n  %s", len(lines), strings.Join(lines, "\n  "))
}

// FieldError is what a component's Validate returns for one of its keys. Field is a key path
// relative to the component ("url", "to[1].channel"); Locate turns it into a Problem with a line.
type FieldError struct {
	Field string
	Msg   string
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Msg }

// Fieldf makes a FieldError.
func Fieldf(field, format string, args ...any) error {
	return &FieldError{Field: field, Msg: fmt.Sprintf(format, args...)}
}

// Locate turns the error returned by a component's Validate (nil, one error, or several
// joined with errors.Join) into problems, using n — the component's YAML node — to find the
// line of each field. path is the component's own path, such as "sinks[2]".
func Locate(n *yaml.Node, path string, err error) Problems {
	if err == nil {
		return nil
	}
	var out Problems
	var walk func(error)
	walk = func(err error) {
		if j, ok := err.(interface{ Unwrap() []error }); ok {
			for _, e := range j.Unwrap() {
				walk(e)
			}
			return
		}
		var fe *FieldError
		if errors.As(err, &fe) {
			out = append(out, Problem{Line: FieldLine(n, fe.Field), Path: joinPath(path, fe.Field), Msg: fe.Msg})
			return
		}
		line := 0
		if n != nil {
			line = n.Line
		}
		out = append(out, Problem{Line: line, Path: path, Msg: err.Error()})
	}
	walk(err)
	return out
}

// FieldLine finds the line of the value at a relative key path ("to[1].channel") below n.
// It falls back to the nearest node it reached, so the line is never far off.
func FieldLine(n *yaml.Node, field string) int {
	if n == nil {
		return 0
	}
	cur := n
	for _, part := range splitPath(field) {
		next := child(cur, part)
		if next == nil {
			break
		}
		cur = next
	}
	return cur.Line
}

func child(n *yaml.Node, part string) *yaml.Node {
	if n == nil {
		return nil
	}
	if n.Kind == yaml.DocumentNode && len(n.Content) > 0 {
		n = n.Content[0]
	}
	if n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	if i, err := strconv.Atoi(part); err == nil && n.Kind == yaml.SequenceNode {
		if i >= 0 && i < len(n.Content) {
			return n.Content[i]
		}
		return nil
	}
	if n.Kind == yaml.MappingNode {
		for i := 0; i+1 < len(n.Content); i += 2 {
			if n.Content[i].Value == part {
				return n.Content[i+1]
			}
		}
	}
	return nil
}

// splitPath splits "to[1].channel" into "to", "1", "channel".
func splitPath(p string) []string {
	p = strings.NewReplacer("[", ".", "]", "").Replace(p)
	var parts []string
	for _, s := range strings.Split(p, ".") {
		if s != "" {
			parts = append(parts, s)
		}
	}
	return parts
}

func joinPath(base, field string) string {
	switch {
	case base == "":
		return field
	case field == "":
		return base
	case strings.HasPrefix(field, "["):
		return base + field
	default:
		return base + "." + field
	}
}

// Path joins a key path and a key or index: Path("sinks", 2) is "sinks[2]", Path("a", "b") is "a.b".
func Path(base string, key any) string {
	if i, ok := key.(int); ok {
		return fmt.Sprintf("%s[%d]", base, i)
	}
	return joinPath(base, fmt.Sprint(key))
}

// Lookup returns the node at a relative key path below n ("routes", "to[1].channel"), or nil.
func Lookup(n *yaml.Node, field string) *yaml.Node {
	cur := n
	if cur != nil && cur.Kind == yaml.DocumentNode && len(cur.Content) > 0 {
		cur = cur.Content[0]
	}
	for _, part := range splitPath(field) {
		if cur = child(cur, part); cur == nil {
			return nil
		}
	}
	return cur
}
