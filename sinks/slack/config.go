package slack

import (
	"errors"
	"math"
	"net/url"
	"strings"
	"text/template"
	"time"
	"unicode"

	"github.com/kdbridge/kdbridge/internal/config"
)

// Defaults of the settings a configuration may leave out.
const (
	DefaultRate        = 1.0 // messages per second per channel: Slack's chat.postMessage limit
	DefaultBurst       = 3
	DefaultTimeout     = 15 * time.Second
	DefaultMaxInFlight = 4
)

// Values of the enumerated settings.
const (
	ThreadsDiscussion = "discussion" // one Slack thread per discussion (the default)
	ThreadsReplies    = "replies"    // Kinetic replies become Slack thread replies
	ThreadsNone       = "none"       // every message top-level

	IdentityAuthor = "author" // post under the author's name and icon (the default)
	IdentityBot    = "bot"    // post as the bot; the text starts with the author's name

	MentionNames = ""      // user tokens as plain display names (the default)
	MentionEmail = "email" // user tokens as <@U…> mentions found by users.lookupByEmail
)

// Config is a `type: slack` entry of `sinks:`.
//
// The bot token needs the scopes chat:write and chat:write.customize (the author's name and
// icon), plus channels:read and groups:read when a channel is given by name, and
// users:read.email with mention_users: email. The bot must be a member of the channels.
//
// Channel is a channel id (C…, G…) or a name ("#ops" or "ops"); a route target's channel
// overrides it. Names are resolved once with conversations.list.
//
// Template is a Go text/template producing the text of each message event. Its data is
// already escaped for Slack, so no value it inserts can become a mention or a link; the
// template's own text is taken as written (it may use Slack mrkdwn and <!here> on purpose).
// The fields are: .Text (the default rendering: the message text plus one line per
// attachment), .Type, .ID, .Source, .Edited, .Discussion.ID/.Title/.URL, .Author.Name/
// .Username/.DisplayName/.Email, .Message.ID/.ParentID/.Kind/.Text/.Attachments (lines).
// Functions: link URL LABEL (a safe <url|label>), truncate N TEXT, default DEF VALUE. Build
// links with link: a field written right after a literal "<" is refused, since it could
// complete a control sequence such as <!channel>. A template that renders only white space
// skips the message. A route target's `template:` (Options.RouteTemplates; checked with
// ValidateTemplate) replaces this one for that route.
//
// IconURL is a text/template over the author (.Name, .Username, .DisplayName, .Email; not
// escaped: the result is a URL, not text) with the functions md5 and sha256 (of the trimmed,
// lowercased value, as Gravatar wants), lower and urlquery; a result that is not an
// absolute http(s) URL is left out.
type Config struct {
	Token        config.Secret   `yaml:"token"`         // xoxb- bot token
	TokenFile    string          `yaml:"token_file"`    // config.Decode fills Token from it
	Channel      string          `yaml:"channel"`       // default channel: id or name
	Threads      string          `yaml:"threads"`       // discussion (default) | replies | none
	Identity     string          `yaml:"identity"`      // author (default) | bot
	IconURL      string          `yaml:"icon_url"`      // optional text/template over the author
	MentionUsers string          `yaml:"mention_users"` // "" (default) | email
	Template     string          `yaml:"template"`      // optional text/template for the message text
	APIURL       string          `yaml:"api_url"`       // optional, e.g. https://slack-gov.com/api/
	Rate         float64         `yaml:"rate"`          // writes per second per channel (posts, edits, deletes), default 1
	Burst        int             `yaml:"burst"`         // default 3
	Timeout      config.Duration `yaml:"timeout"`       // per API call, default 15s

	// Two-way (replies from Slack into Kinetic over Socket Mode; see sources/slack).
	AppToken     config.Secret `yaml:"app_token"`      // xapp- app-level token with connections:write
	AppTokenFile string        `yaml:"app_token_file"` // config.Decode fills AppToken from it
	Reply        bool          `yaml:"reply"`          // every route target of this sink is two-way
	ReplyAuthor  string        `yaml:"reply_author"`   // text/template naming the author in Kinetic; default "**{{.Name}} (Slack)**: "
}

// Validate reports every problem of the configuration, joined, each as a config.FieldError
// naming its key. Templates are parsed and run against a sample message so that a misspelt
// field shows up now, with its template line. It makes no network calls.
func (c *Config) Validate() error {
	_, err := c.compile()
	return err
}

// compiled is a configuration with defaults applied and templates parsed. Validate and New
// share it, so whatever Validate accepts, New builds.
type compiled struct {
	cfg  Config
	text *template.Template // nil: the default rendering
	icon *template.Template // nil: no icon_url
}

func (c *Config) compile() (*compiled, error) {
	cfg := *c
	if cfg.Threads == "" {
		cfg.Threads = ThreadsDiscussion
	}
	if cfg.Identity == "" {
		cfg.Identity = IdentityAuthor
	}
	if cfg.Rate == 0 {
		cfg.Rate = DefaultRate
	}
	if cfg.Burst == 0 {
		cfg.Burst = DefaultBurst
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = config.Duration(DefaultTimeout)
	}
	out := &compiled{}
	var errs []error

	switch tok := cfg.Token.Reveal(); {
	case tok == "":
		errs = append(errs, config.Fieldf("token", "is required (or token_file): a bot token, xoxb-…"))
	case strings.IndexFunc(tok, unicode.IsSpace) >= 0:
		// Never quote the token; say where to look instead.
		errs = append(errs, config.Fieldf(tokenField(cfg), "contains white space"))
	}
	switch app := cfg.AppToken.Reveal(); {
	case app == "" && cfg.Reply:
		errs = append(errs, config.Fieldf("app_token", "is required with reply: true (or app_token_file): an app-level token, xapp-…, with connections:write"))
	case app == "":
	case strings.IndexFunc(app, unicode.IsSpace) >= 0:
		errs = append(errs, config.Fieldf(appTokenField(cfg), "contains white space"))
	case !strings.HasPrefix(app, "xapp-"):
		errs = append(errs, config.Fieldf(appTokenField(cfg), "is not an app-level token (those start with xapp-)"))
	}
	if cfg.Channel != "" {
		if err := checkChannel(cfg.Channel); err != nil {
			errs = append(errs, config.Fieldf("channel", "%v", err))
		}
	}
	switch cfg.Threads {
	case ThreadsDiscussion, ThreadsReplies, ThreadsNone:
	default:
		errs = append(errs, config.Fieldf("threads", "%q is not one of discussion, replies, none", cfg.Threads))
	}
	switch cfg.Identity {
	case IdentityAuthor, IdentityBot:
	default:
		errs = append(errs, config.Fieldf("identity", "%q is not one of author, bot", cfg.Identity))
	}
	switch cfg.MentionUsers {
	case MentionNames, MentionEmail:
	default:
		errs = append(errs, config.Fieldf("mention_users", `%q is not "" (plain names) or email`, cfg.MentionUsers))
	}
	if cfg.APIURL != "" {
		u, err := url.Parse(cfg.APIURL)
		switch {
		case err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "":
			errs = append(errs, config.Fieldf("api_url", "must be an absolute http(s) URL such as https://slack-gov.com/api/"))
		case u.RawQuery != "" || u.Fragment != "" || u.User != nil:
			errs = append(errs, config.Fieldf("api_url", "must not have a query, fragment or user info"))
		case !strings.HasSuffix(cfg.APIURL, "/"):
			// slack-go appends method names to it ("…/api/" + "chat.postMessage").
			cfg.APIURL += "/"
		}
	}
	if cfg.Rate < 0 || math.IsNaN(cfg.Rate) || math.IsInf(cfg.Rate, 0) {
		errs = append(errs, config.Fieldf("rate", "must be a number of messages per second per channel, more than 0 (default %g)", DefaultRate))
	}
	if cfg.Burst < 0 {
		errs = append(errs, config.Fieldf("burst", "must not be negative (default %d)", DefaultBurst))
	}
	if cfg.Timeout < 0 {
		errs = append(errs, config.Fieldf("timeout", "must not be negative"))
	}

	if cfg.Template != "" {
		t, err := compileTextTemplate(cfg.Template)
		if err != nil {
			errs = append(errs, config.Fieldf("template", "%v", err))
		}
		out.text = t
	}
	if cfg.IconURL != "" {
		if cfg.Identity == IdentityBot {
			errs = append(errs, config.Fieldf("icon_url", "applies only with identity: author (the bot keeps its own icon)"))
		}
		t, err := parseIconTemplate(cfg.IconURL)
		if err == nil {
			var icon string
			if icon, err = executeIcon(t, sampleUser()); err == nil && icon != "" {
				if _, ok := httpURL(icon); !ok {
					err = errors.New("does not render an absolute http(s) URL for a sample author")
				}
			}
		}
		if err != nil {
			errs = append(errs, config.Fieldf("icon_url", "%v", err))
		}
		out.icon = t
	}
	out.cfg = cfg
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return out, nil
}

func appTokenField(c Config) string {
	if c.AppTokenFile != "" {
		return "app_token_file"
	}
	return "app_token"
}

func tokenField(c Config) string {
	if c.TokenFile != "" {
		return "token_file"
	}
	return "token"
}

// checkChannel accepts a channel id or name as Slack spells them; it cannot know whether the
// channel exists (that needs the network).
func checkChannel(ch string) error {
	name := strings.TrimPrefix(ch, "#")
	switch {
	case name == "":
		return errors.New("is empty")
	case strings.IndexFunc(name, func(r rune) bool { return unicode.IsSpace(r) || r == ',' || r == '#' }) >= 0:
		return errors.New("must be one channel id (C0123ABCD) or name (#ops), without spaces or commas")
	case len([]rune(name)) > 80:
		return errors.New("is longer than Slack's 80 characters")
	}
	return nil
}
