"""The one test-support layer: helpers and fixtures every test module and bench/ use
(registered as pytest plugins in tests/conftest.py). A test imports only from here (and
tests/e2e/steps.py for the browser steps), never from another test module.

    machine     what the machine must have (PostgreSQL, Redis, Chromium, Caddy): skip or fail
    webapp      app, client, runner, auth, make_practice, make_appointment; Auth, CSRF
    forms       Einladen's form and what it answers; row counts
    html        just enough of a DOM to read the HTML answers
    outbox      the real sender for one round, outbox rows, tokens and links in messages
    fakes       SMTP server and Vonage's SMS API as real local servers
    hubs        hub_kind (in-process, Redis), hubs without an app, settle()
    sockets     LiveServer (the app on a real port, ``live``) and its websocket client
    calls       Call: staff, patient, guests and their sockets (``make_call``)
    browsers    SyntheticBrowser (aiortc), BrowserLoop, what group-call pages receive
    relay       RelayProcess, the relay in-process, control-API look-ups, loopback guard
    stack       the app as ./run starts it in subprocesses (browser tests, benchmarks)
    chromium    real Chromium: arguments, contexts, PageWatch
    page_media  what a call page receives, from getStats
    ports, waiting, processes   free ports, hang guards, /proc
    runs        which tests ./test runs side by side and which alone (``serial``)
"""
