"""Operations: `flask doctor` (is this installation ready?), `flask backup` and
`flask restore`. Used by deploy/install.sh and by whoever looks after the server."""
