package bridge

import (
	"path"
	"slices"
	"strconv"
	"strings"

	"github.com/kdbridge/kdbridge/internal/config"
)

// RelatedItem is something a Kinetic discussion is about: a Submission, a Form, a Team…
// (protocol §5.7). Key is the item's key, such as a submission id or "kapp/form".
type RelatedItem struct {
	Type string `json:"type" yaml:"type"`
	Key  string `json:"key" yaml:"key"`
}

// MatchRule selects discussions by a related item, by title, or by both (then both must
// match). Sources use it to discover discussions, routes to select them.
type MatchRule struct {
	Related *RelatedItem `yaml:"related"` // a related item of this type, and key if set
	Title   string       `yaml:"title"`   // a glob over the title, case-insensitive, such as "Incident *"
}

// Matches reports whether a discussion with this title and these related items satisfies
// the rule. Type and key compare case-insensitively, as Kinetic's own filters do.
func (r MatchRule) Matches(title string, related []RelatedItem) bool {
	if r.Title != "" && !TitleMatches(r.Title, title) {
		return false
	}
	if r.Related != nil {
		return slices.ContainsFunc(related, func(ri RelatedItem) bool {
			return strings.EqualFold(ri.Type, r.Related.Type) && (r.Related.Key == "" || strings.EqualFold(ri.Key, r.Related.Key))
		})
	}
	return true
}

// MatchesAny reports whether d satisfies any of rules.
func MatchesAny(rules []MatchRule, d Discussion) bool {
	return slices.ContainsFunc(rules, func(r MatchRule) bool { return r.Matches(d.Title, d.Related) })
}

// ValidateMatch checks the rules of a match: list at field (such as "discover.match").
func ValidateMatch(field string, rules []MatchRule) []error {
	var errs []error
	if len(rules) == 0 {
		errs = append(errs, config.Fieldf(field, "at least one rule is required (related: or title:)"))
	}
	for i, r := range rules {
		f := config.Path(field, i)
		if r.Related == nil && r.Title == "" {
			errs = append(errs, config.Fieldf(f, "a rule needs related: or title:"))
			continue
		}
		if r.Related != nil && strings.TrimSpace(r.Related.Type) == "" {
			errs = append(errs, config.Fieldf(f+".related.type", "is required (such as Submission)"))
		}
		if r.Title != "" {
			if _, err := path.Match(r.Title, ""); err != nil {
				errs = append(errs, config.Fieldf(f+".title", "%q is not a valid glob (path.Match syntax): %v", r.Title, err))
			}
		}
	}
	return errs
}

// TitleMatches matches a title against a glob: path.Match syntax, case-insensitive, with '/'
// an ordinary character (mapped to NUL on both sides, so that '*' matches across it).
func TitleMatches(pattern, title string) bool {
	fold := func(s string) string { return strings.ReplaceAll(strings.ToLower(s), "/", "\x00") }
	ok, _ := path.Match(fold(pattern), fold(title))
	return ok
}

// String renders the rule for people: `related Form/services/it` and `title "Incident *"`.
func (r MatchRule) String() string {
	var parts []string
	if r.Related != nil {
		parts = append(parts, "related "+strings.TrimSuffix(r.Related.Type+"/"+r.Related.Key, "/"))
	}
	if r.Title != "" {
		parts = append(parts, "title "+strconv.Quote(r.Title))
	}
	return strings.Join(parts, " and ")
}
