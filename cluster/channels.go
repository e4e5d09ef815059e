package cluster

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/halleypush/halley/persist"
)

// X-03's channel table on a light node: /{apiKey}/stats lists the
// account's queued EZComet messages per channel, which only the store
// node holds. A light node asks it (one request/reply, on the protocol's
// reader pool); the answer is persist's []ChannelStat as JSON, like the
// account table: asked once per stats request, not per message.

// frames of the channel table read
const (
	frameChannels       = 'C' // request: username's channels
	frameChannelsAnswer = 'c' // answer: JSON array of persist.ChannelStat
)

// appendChannelsRequest appends the frame asking username's channels.
func appendChannelsRequest(b []byte, username string) []byte {
	return appendString(appendHeader(b, frameChannels), username)
}

// decodeChannelsRequest decodes it.
func decodeChannelsRequest(b []byte) (string, error) {
	d := decoder{b: b}
	d.expect(frameChannels)
	name := d.bytes("username", maxWireName)
	if err := d.done(); err != nil {
		return "", err
	}
	return string(name), nil
}

// appendChannels appends the frame of a channel table answer.
func appendChannels(b []byte, cs []persist.ChannelStat) ([]byte, error) {
	js, err := json.Marshal(cs)
	if err != nil {
		return nil, fmt.Errorf("cluster: encode channels: %w", err)
	}
	return append(appendHeader(b, frameChannelsAnswer), js...), nil
}

// decodeChannels decodes a channel table answer.
func decodeChannels(b []byte) ([]persist.ChannelStat, error) {
	d := decoder{b: b}
	d.expect(frameChannelsAnswer)
	if d.err != nil {
		return nil, d.err
	}
	if len(d.b) > maxAccountsFrame {
		return nil, fmt.Errorf("cluster: bad frame: channel table of %d bytes", len(d.b))
	}
	var cs []persist.ChannelStat
	if err := json.Unmarshal(d.b, &cs); err != nil {
		return nil, fmt.Errorf("cluster: bad frame: channels: %w", err)
	}
	return cs, nil
}

// Channels asks the store node for username's channels (persist's
// EZChannels). Blocks for a round trip: off the event loops.
func (l *Link) Channels(ctx context.Context, username string) ([]persist.ChannelStat, error) {
	m, err := l.request(ctx, appendChannelsRequest(nil, username))
	if err != nil {
		return nil, err
	}
	cs, err := decodeChannels(m.Data)
	if err != nil {
		return nil, fmt.Errorf("%w: cluster: channels: %w", persist.ErrStorage, err)
	}
	return cs, nil
}
