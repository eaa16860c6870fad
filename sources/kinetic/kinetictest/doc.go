// Package kinetictest is a simulator of the Kinetic Platform server side of Discussions:
// the OAuth token endpoint, the Discussions REST API and the Topic Hub websocket, spoken
// over real sockets exactly as reference/kinetic-discussions-protocol.md describes them.
//
// It follows slack-go's slacktest: tests, the end-to-end suite, `kdbridge demo`,
// `kdbridge simulate` and the benchmark all talk to it through the real protocol, and
// drive or break it through the Go API (CreateDiscussion, PostMessage, DropConnections,
// Stall, ...). State lives in memory; Close stops every goroutine the server started.
//
// Where the reference leaves the server's behaviour open (§9), the simulator picks one
// plausible behaviour and says so in a comment next to the code.
package kinetictest
