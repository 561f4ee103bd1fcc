"""A complete Rollcall agent in Python (pip install websockets): python_agent.py ws://127.0.0.1:7777 web-01 [--binary] [--beats N]"""
import asyncio, json, os, struct, sys, uuid
import websockets

async def main(url, agent_id, binary=False, beats=None):
    headers = {"Authorization": f"Bearer {os.environ['ROLLCALL_TOKEN']}"} if "ROLLCALL_TOKEN" in os.environ else {}
    async with websockets.connect(f"{url}/v1/agent?id={agent_id}&boot={uuid.uuid4().hex}", additional_headers=headers, subprotocols=["rollcall.v1"]) as ws:
        welcome = json.loads(await ws.recv())
        await ws.send(json.dumps({"type": "hello", "hostname": os.uname().nodename, "agent_version": "py-1", "labels": {"lang": "python"}}))
        seq = 0
        try:
            while beats is None or seq < beats:
                seq += 1
                await ws.send(struct.pack(">BQ", 1, seq) if binary else json.dumps({"type": "heartbeat", "seq": seq}))
                ack = await ws.recv()
                acked = struct.unpack(">BQ", ack)[1] if isinstance(ack, bytes) else json.loads(ack)["seq"]
                assert acked == seq, f"ack {acked} for beat {seq}"
                await asyncio.sleep(welcome["interval_ms"] / 1000)
        finally:
            await ws.send(json.dumps({"type": "bye", "reason": "shutdown"}))
            await ws.close(1000)

args = sys.argv[1:]
beats = int(args[args.index("--beats") + 1]) if "--beats" in args else None
asyncio.run(main(args[0], args[1], "--binary" in args, beats))
