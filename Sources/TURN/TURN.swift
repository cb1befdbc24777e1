// The TURN server state machine (RFC 8656) as a sans-IO core: bytes, sender and now in;
// commands and the next deadline out. Filled in by the user-space relay issue.

package enum TURN {}
