package config

import (
	"errors"
	"regexp"
	"strings"
)

// templatePos matches the position text/template puts in front of its errors:
// "template: NAME:LINE: msg" or "template: NAME:LINE:COL: executing "NAME" at <...>: msg".
var templatePos = regexp.MustCompile(`^template: [^:]*:(\d+):(?:(\d+):)? (?:executing "[^"]*" )?`)

// TemplateError restates a text/template error as "template line 3, column 7: ...", which
// reads well after the key path that Locate puts in front of it.
func TemplateError(err error) error {
	msg := err.Error()
	m := templatePos.FindStringSubmatchIndex(msg)
	if m == nil {
		return errors.New(strings.TrimPrefix(msg, "template: "))
	}
	pos := "template line " + msg[m[2]:m[3]]
	if m[4] >= 0 {
		pos += ", column " + msg[m[4]:m[5]]
	}
	return errors.New(pos + ": " + msg[m[1]:])
}
