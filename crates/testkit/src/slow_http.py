# A real server that answers HTTP after a fixed delay, for latency-aware scheduling tests
# (rvs-testkit's SlowHttp) and bench/latency.sh: one request per connection,
# `Connection: close`.
# Usage: python3 slow_http.py HOST PORT DELAY_MS BODY
import asyncio, sys
host, port, delay, body = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]) / 1000.0, sys.argv[4].encode()
RESP = (b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nConnection: close\r\n\r\n" % len(body)) + body
async def serve(r, w):
    try:
        data = b""
        while b"\r\n\r\n" not in data and len(data) < 65536:
            chunk = await r.read(4096)
            if not chunk:
                return
            data += chunk
        if delay:
            await asyncio.sleep(delay)
        w.write(RESP)
        await w.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        w.close()
async def main():
    s = await asyncio.start_server(serve, host, port, backlog=1024, reuse_address=True)
    async with s:
        await s.serve_forever()
asyncio.run(main())
