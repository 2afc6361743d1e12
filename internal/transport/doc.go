// SPDX-License-Identifier: Apache-2.0

// Package transport opens the peer-to-peer D-Bus connections between a
// BlueChi agent and its controller, over TCP and unix stream sockets.
//
// There is no bus daemon on these connections: the agent dials (SASL client),
// the controller listens (SASL server), and once authentication is done both
// ends exchange D-Bus messages directly. This package holds what such a
// connection needs below the message layer: D-Bus address parsing,
// listeners (also socket-activated ones), socket options, peer queries and
// both halves of the SASL handshake (ServerHandshake, ClientHandshake).
// The connection itself is internal/wireconn's.
//
// The server accepts the EXTERNAL and ANONYMOUS mechanisms and, like
// upstream's sd-bus server in anonymous mode, does not check the claimed uid
// of EXTERNAL, neither on TCP nor on unix sockets: access control on the unix
// socket is left to its file permissions. Unix file-descriptor passing is not
// offered (NEGOTIATE_UNIX_FD is answered with ERROR).
package transport
