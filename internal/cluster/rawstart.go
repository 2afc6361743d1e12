// SPDX-License-Identifier: Apache-2.0

package cluster

import (
	"context"

	"github.com/godbus/dbus/v5"

	bluechi "github.com/bluechi-go/bluechi/gen/bluechi"
	"github.com/bluechi-go/bluechi/internal/busconn"
	"github.com/bluechi-go/bluechi/internal/dbusrt"
	"github.com/bluechi-go/bluechi/internal/wireconn"
)

// StartUnitRaw calls Node.StartUnit(unit, "replace") of node on conn and
// returns the job: a state manager's call on our own connection, whose
// reader has handled every signal that came before the reply when it
// returns (the benchmarks' and the job-ordering tests' client).
func StartUnitRaw(ctx context.Context, conn *busconn.Conn, node, unit string) (dbus.ObjectPath, error) {
	args := []any{unit, "replace"}
	sig := dbus.SignatureOf(args...).String()
	body, err := dbusrt.EncodeBody(sig, args...)
	if err != nil {
		return "", err
	}
	r, err := conn.Wire().Call(ctx, &wireconn.Request{Destination: bluechi.NodeBusName, Path: string(bluechi.NodePath(node)),
		Interface: bluechi.NodeInterface, Member: bluechi.NodeMethodStartUnit, Signature: sig, Body: body})
	if err != nil {
		return "", err
	}
	rd := r.Reader()
	job, err := rd.String()
	return dbus.ObjectPath(job), err
}
