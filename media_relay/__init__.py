"""Media relay sidecar for 3–5 party Premium calls: forwards each participant's RTP
packets to the others without decoding. Run with `python -m media_relay`; the web app
drives it through the signed control API (media_relay.client)."""
