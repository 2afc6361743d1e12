// SPDX-License-Identifier: Apache-2.0

// Package transport opens the peer-to-peer D-Bus connections between a
// BlueChi agent and its controller, over TCP and unix stream sockets.
//
// There is no bus daemon on these connections: the agent dials (SASL client),
// the controller listens (SASL server), and once authentication is done both
// ends exchange D-Bus messages directly. Nobody calls
// org.freedesktop.DBus.Hello; godbus would otherwise drop method calls that
// carry a destination name.
//
// godbus implements only the client half of SASL and starts its reader
// goroutine only inside (*dbus.Conn).Auth. This package therefore runs the
// real handshake itself (server half in Accept, a pipelined client half in
// Dial) and then hands the socket to godbus through a wrapper that answers
// godbus's own client handshake locally, so that none of it reaches the wire.
// Every read after the handshake goes through the buffer the handshake was
// read with, so message bytes that arrived together with BEGIN are not lost.
//
// The server accepts the EXTERNAL and ANONYMOUS mechanisms and, like
// upstream's sd-bus server in anonymous mode, does not check the claimed uid
// of EXTERNAL, neither on TCP nor on unix sockets: access control on the unix
// socket is left to its file permissions. Unix file-descriptor passing is not
// offered (NEGOTIATE_UNIX_FD is answered with ERROR).
package transport
