package kinetictest

import (
	"bytes"
	"io"
	"mime/multipart"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"
)

type messagesResponse struct {
	Messages      []Message `json:"messages"`
	NextPageToken *string   `json:"nextPageToken"`
}

// TestMessagePagingWithConcurrentPosts pages newest first through 100 messages with a small
// limit while another goroutine posts 60 more: every one of the first 100 is seen exactly
// once, in strictly newest-first order, and the last page says nextPageToken: null.
func TestMessagePagingWithConcurrentPosts(t *testing.T) {
	s := newTestServer(t, Options{})
	d := s.CreateDiscussion(DiscussionSpec{Title: "paging"})
	author := User{Username: "pager"}
	var initial []string
	for i := range 100 {
		m, err := s.PostMessage(d.ID, author, "m"+strconv.Itoa(i))
		if err != nil {
			t.Fatal(err)
		}
		initial = append(initial, m.ID)
	}
	tok := token(t, s)

	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := range 60 {
			if _, err := s.PostMessage(d.ID, author, "late"+strconv.Itoa(i)); err != nil {
				t.Error(err)
				return
			}
		}
	}()

	var seen []string
	pageToken := ""
	for pages := 0; ; pages++ {
		if pages > 50 {
			t.Fatal("paging does not end")
		}
		q := url.Values{"limit": {"7"}}
		if pageToken != "" {
			q.Set("pageToken", pageToken)
		}
		var page messagesResponse
		callJSON(t, s, tok, http.MethodGet, "/discussions/"+d.ID+"/messages?"+q.Encode(), nil, &page)
		for _, m := range page.Messages {
			seen = append(seen, m.ID)
		}
		if page.NextPageToken == nil {
			break
		}
		if len(page.Messages) != 7 {
			t.Fatalf("short page (%d) before the last", len(page.Messages))
		}
		pageToken = *page.NextPageToken
	}
	wg.Wait()

	// The first page may include some late messages; what follows them must be exactly
	// the initial messages, newest first.
	i := slices.Index(seen, initial[len(initial)-1])
	if i < 0 {
		t.Fatal("newest initial message not seen")
	}
	got := seen[i:]
	want := slices.Clone(initial)
	slices.Reverse(want)
	if !slices.Equal(got, want) {
		t.Fatalf("paged %d messages after the head, want the %d initial ones newest first", len(got), len(want))
	}
	for _, id := range seen[:i] {
		if slices.Contains(initial, id) {
			t.Fatal("initial message seen before the newest one")
		}
	}
}

func TestMessagesPageShapes(t *testing.T) {
	s := newTestServer(t, Options{})
	d := s.CreateDiscussion(DiscussionSpec{Title: "shapes"})
	tok := token(t, s)
	base := "/discussions/" + d.ID

	var empty messagesResponse
	callJSON(t, s, tok, http.MethodGet, base+"/messages", nil, &empty)
	if empty.Messages == nil || len(empty.Messages) != 0 || empty.NextPageToken != nil {
		t.Fatalf("empty page %+v", empty)
	}
	status, raw := call(t, s, tok, http.MethodGet, base+"/messages", nil)
	if status != http.StatusOK || string(raw) != "{\"messages\":[],\"nextPageToken\":null}\n" {
		t.Fatalf("empty page body %s", raw)
	}

	for i := range 30 {
		if _, err := s.PostMessage(d.ID, User{Username: "u"}, strconv.Itoa(i)); err != nil {
			t.Fatal(err)
		}
	}
	var page messagesResponse
	callJSON(t, s, tok, http.MethodGet, base+"/messages", nil, &page)
	if len(page.Messages) != 25 || page.Messages[0].Text() != "29" || page.Messages[24].Text() != "5" || page.NextPageToken == nil {
		t.Fatalf("default page: %d messages, first %q", len(page.Messages), page.Messages[0].Text())
	}
	callJSON(t, s, tok, http.MethodGet, base+"/messages?limit=5000", nil, &page)
	if len(page.Messages) != 30 || page.NextPageToken != nil {
		t.Fatalf("limit 5000 clamped: %d messages", len(page.Messages))
	}
	// Exactly limit messages left: the page that takes them is the last one.
	callJSON(t, s, tok, http.MethodGet, base+"/messages?limit=30", nil, &page)
	if page.NextPageToken != nil {
		t.Fatal("nextPageToken on a page that took every message")
	}

	status, raw = call(t, s, tok, http.MethodGet, base+"/messages?pageToken=bogus", nil)
	wantError(t, status, raw, http.StatusBadRequest)
	status, raw = call(t, s, tok, http.MethodGet, base+"/messages?limit=-1", nil)
	wantError(t, status, raw, http.StatusBadRequest)

	var got struct{ Discussion Discussion }
	callJSON(t, s, tok, http.MethodGet, base, nil, &got)
	mp := got.Discussion.MessagesPage
	if mp == nil || len(mp.Messages) != 25 || mp.Messages[0].Text() != "29" || mp.NextPageToken == nil {
		t.Fatalf("embedded messagesPage %+v", mp)
	}
	// Timestamps: UTC with milliseconds.
	if _, err := time.Parse("2006-01-02T15:04:05.000Z", mp.Messages[0].CreatedAt); err != nil {
		t.Fatalf("createdAt %q: %v", mp.Messages[0].CreatedAt, err)
	}

	// Unknown routes and ids answer JSON errors.
	status, raw = call(t, s, tok, http.MethodGet, "/discussions/nope", nil)
	wantError(t, status, raw, http.StatusNotFound)
	status, raw = call(t, s, tok, http.MethodGet, "/nowhere", nil)
	wantError(t, status, raw, http.StatusNotFound)
	status, raw = call(t, s, tok, http.MethodPost, base+"/messages", []byte(`{"content":`))
	wantError(t, status, raw, http.StatusBadRequest)
	status, raw = call(t, s, tok, http.MethodPost, base+"/messages", map[string]any{"content": []any{}})
	wantError(t, status, raw, http.StatusBadRequest)
}

func TestListDiscussions(t *testing.T) {
	s := newTestServer(t, Options{})
	samples := s.SeedSamples()
	if len(samples) != 3 {
		t.Fatalf("%d samples", len(samples))
	}
	for _, d := range samples {
		if len(d.MessagesPage.Messages) < 3 || len(d.RelatedItems) != 1 {
			t.Fatalf("sample %q: %d messages, %d related", d.Title, len(d.MessagesPage.Messages), len(d.RelatedItems))
		}
	}
	for i := range 12 {
		s.CreateDiscussion(DiscussionSpec{Title: "Bulk " + strconv.Itoa(i)})
	}
	s.CreateDiscussion(DiscussionSpec{Title: "Old incident", IsArchived: true})
	tok := token(t, s)

	type list struct {
		Discussions   []Discussion `json:"discussions"`
		NextPageToken *string      `json:"nextPageToken"`
	}
	var l list
	callJSON(t, s, tok, http.MethodGet, "/discussions", nil, &l)
	if len(l.Discussions) != 10 || l.NextPageToken == nil || l.Discussions[0].Title != "Bulk 11" || l.Discussions[0].MessagesPage == nil {
		t.Fatalf("first page: %d, next %v", len(l.Discussions), l.NextPageToken)
	}
	var l2 list
	callJSON(t, s, tok, http.MethodGet, "/discussions?pageToken="+url.QueryEscape(*l.NextPageToken), nil, &l2)
	if len(l2.Discussions) != 5 || l2.NextPageToken != nil {
		t.Fatalf("second page: %d, next %v", len(l2.Discussions), l2.NextPageToken)
	}

	callJSON(t, s, tok, http.MethodGet, "/discussions?title=incident", nil, &l)
	if len(l.Discussions) != 1 || l.Discussions[0].ID != samples[0].ID {
		t.Fatalf("title filter: %+v", l.Discussions)
	}
	callJSON(t, s, tok, http.MethodGet, "/discussions?type=Submission&key="+SampleSubmissionID, nil, &l)
	if len(l.Discussions) != 1 || l.Discussions[0].ID != samples[0].ID {
		t.Fatalf("related filter: %d", len(l.Discussions))
	}
	callJSON(t, s, tok, http.MethodGet, "/discussions?type=Form&key=services%2Fit-request", nil, &l)
	if len(l.Discussions) != 1 || l.Discussions[0].ID != samples[1].ID {
		t.Fatalf("form filter: %d", len(l.Discussions))
	}
	callJSON(t, s, tok, http.MethodGet, "/discussions?archived=true", nil, &l)
	if len(l.Discussions) != 1 || l.Discussions[0].Title != "Old incident" {
		t.Fatalf("archived filter: %d", len(l.Discussions))
	}

	var created struct{ Discussion Discussion }
	callJSON(t, s, tok, http.MethodPost, "/discussions", map[string]any{
		"title": "Via REST", "description": "d", "isPrivate": false, "joinPolicy": map[string]string{"name": "Authenticated Users"},
		"owningUsers": []map[string]string{{"username": "integration-user"}}, "owningTeams": []any{},
	}, &created)
	if created.Discussion.ID == "" || created.Discussion.JoinPolicy == nil || created.Discussion.CreatedBy.Username != "integration-user" {
		t.Fatalf("created %+v", created.Discussion)
	}
	status, raw := call(t, s, tok, http.MethodPost, "/discussions", map[string]any{"description": "no title"})
	wantError(t, status, raw, http.StatusBadRequest)
}

func TestVersionsAndAttachments(t *testing.T) {
	s := newTestServer(t, Options{})
	d := s.CreateDiscussion(DiscussionSpec{Title: "files"})
	tok := token(t, s)
	base := s.URL() + "/app/discussions/api/v1/discussions/" + d.ID

	// Multipart create, as the browser sends it.
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	_ = mw.WriteField("message", `{"content":[{"type":"text","value":"see attached"}]}`)
	fw, _ := mw.CreateFormFile("attachments", "report.txt")
	_, _ = fw.Write([]byte("hello file"))
	_ = mw.Close()
	req, _ := http.NewRequest(http.MethodPost, base+"/messages", &body)
	req.Header.Set("Authorization", "Bearer "+tok)
	req.Header.Set("Content-Type", mw.FormDataContentType())
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("multipart: %d %s", resp.StatusCode, raw)
	}
	m := decode[struct{ Message Message }](t, raw).Message
	if len(m.Content) != 2 || m.Content[1].Type != "attachment" {
		t.Fatalf("content %+v", m.Content)
	}
	av := decode[attachmentValue](t, m.Content[1].Value)
	if av.Filename != "report.txt" || av.Size != 10 {
		t.Fatalf("attachment %+v", av)
	}
	req, _ = http.NewRequest(http.MethodGet, base+"/messages/"+m.ID+"/files/"+av.DocumentID+"/report.txt", nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(raw) != "hello file" {
		t.Fatalf("download %q", raw)
	}

	// Versions: newest first.
	if _, err := s.UpdateMessage(d.ID, m.ID, "v2"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.UpdateMessage(d.ID, m.ID, "v3"); err != nil {
		t.Fatal(err)
	}
	var v struct{ Messages []Message }
	callJSON(t, s, tok, http.MethodGet, "/discussions/"+d.ID+"/messages/"+m.ID+"/versions", nil, &v)
	if len(v.Messages) != 3 || v.Messages[0].Text() != "v3" || v.Messages[2].VersionID != m.VersionID {
		t.Fatalf("versions %+v", v.Messages)
	}
	if v.Messages[0].UpdatedAt < v.Messages[0].CreatedAt {
		t.Fatal("updatedAt before createdAt")
	}

	// Version endpoints.
	callJSON(t, s, tok, http.MethodGet, "/version", nil, nil)
	for _, p := range []string{"/app/api/v1/version", "/app/topics/api/v1/version"} {
		resp, err := http.Get(s.URL() + p)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("%s: %d", p, resp.StatusCode)
		}
	}
}
