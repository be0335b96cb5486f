"""What one stored message costs nats-server, by stream layout (BENCHMARKS.md,
"What is left"): N publishes of a task state's size (256 in flight, each ack
awaited, or plain publishes), and nats-server's CPU seconds per message from
/proc/<pid>/stat. Only the server's figure matters here: the client is Python.

    target/bench-venv/bin/python natask-bench/storecost.py [N] [variant ...]

The venv is the one `scripts/bench taskiq` creates (it has nats-py); the
server is $NATS_SERVER_BIN or nats-server on PATH, on 127.0.0.1, in a temp dir.
"""
import asyncio, json, os, shutil, socket, subprocess, sys, tempfile, time
import nats
from nats.js.api import StreamConfig, DiscardPolicy, RetentionPolicy, StorageType

def cpu(pid):
    f=open(f"/proc/{pid}/stat").read().split()
    return (int(f[13])+int(f[14]))/100

N=int(sys.argv[1]) if len(sys.argv)>1 else 100000
body=json.dumps({"id":"0193b5a1c2d34e5f6a7b8c9d0e1f2a3b","task":"bench","queue":"bench","state":"succeeded","seq":123456,"attempts":1,"enqueued_at":1764630000000,"finished_at":1764630000100,"due_at":None,"last_error":None}).encode()

async def quiet(_error):
    pass

async def variant(name, cfg, subj, ack=True, msgid=False):
    d=tempfile.mkdtemp(); s=socket.socket(); s.bind(("127.0.0.1",0)); port=s.getsockname()[1]; s.close()
    p=subprocess.Popen([os.environ.get("NATS_SERVER_BIN","nats-server"),"-js","-a","127.0.0.1","-p",str(port),"-sd",d],stdout=subprocess.DEVNULL,stderr=subprocess.DEVNULL)
    for _ in range(100):  # until the server listens (bounded)
        try:
            nc=await nats.connect(f"nats://127.0.0.1:{port}", allow_reconnect=False, error_cb=quiet)
            break
        except Exception:
            await asyncio.sleep(0.05)
    else:
        raise SystemExit("nats-server did not start")
    js=nc.jetstream()
    await js.add_stream(cfg)
    c0=cpu(p.pid); t0=time.time()
    W=256
    for i in range(0,N,W):
        if ack:
            futs=[js.publish(subj(j), body, headers={"Nats-Msg-Id":f"m{j}"} if msgid else None) for j in range(i,min(N,i+W))]
            await asyncio.gather(*futs)
        else:
            for j in range(i,min(N,i+W)):
                await nc.publish(subj(j), body)
            await nc.flush()
    # wait until stored (bounded)
    deadline=time.time()+60
    while time.time()<deadline and (await js.stream_info(cfg.name)).state.messages < N:
        await asyncio.sleep(0.01)
    c1=cpu(p.pid); t1=time.time()
    print(f"{name:40s} server {1e6*(c1-c0)/N:6.1f} us/msg  wall {t1-t0:5.2f}s", flush=True)
    await nc.close(); p.kill(); p.wait(); shutil.rmtree(d)

async def main():
    which=sys.argv[2:] or ["plain-shared","plain-unique","kv","kv-noack","wq-msgid-shared","wq-msgid-unique"]
    day=7*24*3600
    V={
     "plain-unique": (StreamConfig(name="S",subjects=["s.>"],storage=StorageType.FILE), lambda j:f"s.{j:032x}", True, False),
     "plain-shared": (StreamConfig(name="S",subjects=["s.>"],storage=StorageType.FILE), lambda j:"s.x", True, False),
     "kv": (StreamConfig(name="S",subjects=["s.>"],storage=StorageType.FILE,max_msgs_per_subject=1,max_age=day,allow_rollup_hdrs=True,deny_delete=True,allow_direct=True,discard=DiscardPolicy.NEW), lambda j:f"s.{j:032x}", True, False),
     "kv-noper": (StreamConfig(name="S",subjects=["s.>"],storage=StorageType.FILE,max_age=day,allow_rollup_hdrs=True,deny_delete=True,allow_direct=True,discard=DiscardPolicy.NEW), lambda j:f"s.{j:032x}", True, False),
     "kv-noack": (StreamConfig(name="S",subjects=["s.>"],storage=StorageType.FILE,max_msgs_per_subject=1,max_age=day,allow_rollup_hdrs=True,deny_delete=True,allow_direct=True,discard=DiscardPolicy.NEW), lambda j:f"s.{j:032x}", False, False),
     "kv-mem": (StreamConfig(name="S",subjects=["s.>"],storage=StorageType.MEMORY,max_msgs_per_subject=1,max_age=day,allow_rollup_hdrs=True,deny_delete=True,allow_direct=True,discard=DiscardPolicy.NEW), lambda j:f"s.{j:032x}", True, False),
     "wq-msgid-shared": (StreamConfig(name="S",subjects=["s.>"],storage=StorageType.FILE,retention=RetentionPolicy.WORK_QUEUE,duplicate_window=120), lambda j:"s.x", True, True),
     "wq-msgid-unique": (StreamConfig(name="S",subjects=["s.>"],storage=StorageType.FILE,retention=RetentionPolicy.WORK_QUEUE,duplicate_window=120), lambda j:f"s.{j:032x}", True, True),
    }
    for w in which:
        cfg,subj,ack,msgid=V[w]
        await variant(w,cfg,subj,ack,msgid)
asyncio.run(main())
