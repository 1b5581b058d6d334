#!/bin/bash
# Counts the fsync and fdatasync calls a real `custody serve` (embedded
# store) makes per request: 20 monolithic blob pushes, 20 blob pushes
# through an upload session (POST, PATCH, closing PUT) and 20 manifest
# pushes by tag, with curl. Needs strace, curl and bc.
#
# usage: bench/fsyncs.sh BINARY LABEL [ENV=VALUE...]
#   e.g. bench/fsyncs.sh ./custody audit-off CUSTODY_AUDIT_DISABLE_UNSAFE=true
set -e
bin=$1; label=$2; shift 2
d=$(mktemp -d)
port=$((20000 + RANDOM % 20000))
env "$@" CUSTODY_DATA=$d/data CUSTODY_ADDR=127.0.0.1:$port CUSTODY_READY_FILE=$d/ready \
  strace -f -qq -e trace=fsync,fdatasync -o $d/trace $bin serve --auth=none >$d/log 2>&1 &
pid=$!
for i in $(seq 200); do [ -s $d/ready ] && break; sleep 0.1; done
base=http://127.0.0.1:$port
count() { grep -cE '(^|[^_])f(data)?sync\(' $d/trace || true; }
N=20
c0=$(count)
for i in $(seq $N); do
  printf 'blob-%s-%s' $label $i > $d/b; dg=sha256:$(sha256sum $d/b | cut -d' ' -f1)
  curl -sf -o /dev/null -X POST --data-binary @$d/b -H 'Content-Type: application/octet-stream' "$base/v2/m/r/blobs/uploads/?digest=$dg"
done
c1=$(count)
for i in $(seq $N); do
  printf 'layer-%s-%s' $label $i > $d/b; dg=sha256:$(sha256sum $d/b | cut -d' ' -f1)
  loc=$(curl -sf -D - -o /dev/null -X POST "$base/v2/m/r/blobs/uploads/" | tr -d '\r' | awk -F': ' 'tolower($1)=="location"{print $2}')
  loc=$(curl -sf -D - -o /dev/null -X PATCH --data-binary @$d/b -H 'Content-Type: application/octet-stream' "$base$loc" | tr -d '\r' | awk -F': ' 'tolower($1)=="location"{print $2}')
  cp=$(count)
  curl -sf -o /dev/null -X PUT "$base$loc?digest=$dg"
  put=$((put + $(count) - cp))
done
c2=$(count)
printf '{}' > $d/cfg; cd=sha256:$(sha256sum $d/cfg | cut -d' ' -f1)
curl -sf -o /dev/null -X POST --data-binary @$d/cfg "$base/v2/m/r/blobs/uploads/?digest=$cd"
c3=$(count)
for i in $(seq $N); do
  printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"%s","size":2},"layers":[],"annotations":{"i":"%s"}}' $cd $i > $d/m
  curl -sf -o /dev/null -X PUT --data-binary @$d/m -H 'Content-Type: application/vnd.oci.image.manifest.v1+json' "$base/v2/m/r/manifests/t$i"
done
c4=$(count)
kill $(pgrep -P $pid); wait $pid 2>/dev/null || true
echo "$label: fsyncs per request: monolithic blob POST $(echo "scale=2; ($c1-$c0)/$N" | bc), session (POST+PATCH+PUT) $(echo "scale=2; ($c2-$c1)/$N" | bc) of which closing PUT $(echo "scale=2; $put/$N" | bc), manifest PUT by tag $(echo "scale=2; ($c4-$c3)/$N" | bc)"
rm -rf $d
