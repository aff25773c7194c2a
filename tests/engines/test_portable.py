"""The portable export in real engines, through their own Python clients.

Run by tests/engines/portable.test.mjs, which writes into $PORTABLE_DATA: qdrant.jsonl and
milvus.jsonl (toJsonl's lines), schema-qdrant.json and schema-milvus.json (portableSchema), and
queries.json ({k, dim, queries: [{text, dense, sparse: {ids, weights}, colbert: {data, rows, dim},
expected: {dense, sparse, colbert: [[point id, our score], ...] best first}}]}: our exact scores
of every window). Each engine gets a collection made from the schema, the JSONL as it is, and
each query dense-only and sparse-only (and ColBERT MaxSim in Qdrant); its top-k must be ours
(ties aside, see `check`). Writes $PORTABLE_DATA/report.json.

    PORTABLE_DATA=DIR python tests/engines/test_portable.py -v
"""

import json
import os
import time
import unittest

DATA = os.environ.get("PORTABLE_DATA", "")
# Scores within this of each other are a tie (float32 sums in the engines, float64 in ours):
# |a - b| <= EPS * (1 + |a|).
EPS = 1e-5
REPORT = {}


def read(name):
    with open(os.path.join(DATA, name), encoding="utf-8") as f:
        return json.load(f)


def jsonl(name):
    with open(os.path.join(DATA, name), encoding="utf-8") as f:
        for line in f:
            if line.strip():
                yield json.loads(line)


def batches(items, n):
    batch = []
    for item in items:
        batch.append(item)
        if len(batch) == n:
            yield batch
            batch = []
    if batch:
        yield batch


def close(a, b):
    return abs(a - b) <= EPS * (1 + abs(a))


def check(test, what, got, expected, k, scale=1.0):
    """`got`: [(id, engine score)] best first, as the engine returned its top k; `expected`:
    [[id, our score]] of every candidate, best first. The engine's list must be our top k:
    - as many hits as we have candidates, up to k;
    - each hit's engine score (times `scale`) equals our score of that id;
    - the hits are in our order, where an order between scores that tie (`close`) is either;
    - the hits are our top k, where a window that ties with our k-th score may stand in for
      another one that does.
    Returns whether the ids were exactly ours, in our order (False only where ties allowed it)."""
    ours = {pid: s for pid, s in expected}
    test.assertEqual(len(got), min(k, len(expected)), f"{what}: {len(got)} hits")
    for rank, (pid, score) in enumerate(got):
        test.assertIn(pid, ours, f"{what}: hit {rank} {pid} is no candidate of ours")
        test.assertTrue(close(ours[pid], score * scale), f"{what}: hit {rank} {pid} scores {score * scale}, ours {ours[pid]}")
        if rank > 0:
            prev = ours[got[rank - 1][0]]
            test.assertTrue(prev >= ours[pid] or close(prev, ours[pid]), f"{what}: hit {rank} {pid} ({ours[pid]}) ranks below {prev}")
    if not got:
        return True
    kth = expected[len(got) - 1][1]
    ids = {pid for pid, _ in got}
    for pid, s in expected[: len(got)]:
        if pid not in ids:
            test.assertTrue(close(kth, s), f"{what}: our top-{k} window {pid} ({s}) is missing, and it does not tie with the {k}th ({kth})")
    for pid, _ in got:
        test.assertTrue(ours[pid] >= kth or close(ours[pid], kth), f"{what}: {pid} ({ours[pid]}) is below our {k}th ({kth})")
    return [pid for pid, _ in got] == [pid for pid, _ in expected[: len(got)]]


class TestCheck(unittest.TestCase):
    """`check` itself: it fails a list that is not our top k."""

    expected = [["a", 0.9], ["b", 0.8], ["c", 0.8 - 1e-7], ["d", 0.5], ["e", 0.1]]

    def test_accepts(self):
        self.assertTrue(check(self, "same", [("a", 0.9), ("b", 0.8), ("c", 0.8)], self.expected, 3))
        # b and c tie: either order, and either one at the cut.
        self.assertFalse(check(self, "tie", [("a", 0.9), ("c", 0.8), ("b", 0.8)], self.expected, 3))
        self.assertFalse(check(self, "tie at the cut", [("a", 0.9), ("c", 0.8)], self.expected, 2))

    def test_rejects(self):
        wrong = [
            [("a", 0.9), ("d", 0.5), ("b", 0.8)],  # out of order
            [("a", 0.9), ("b", 0.8), ("d", 0.5)],  # c left out, no tie
            [("a", 0.9), ("b", 0.7), ("c", 0.8)],  # a score that is not ours
            [("a", 0.9), ("b", 0.8)],  # too few
            [("a", 0.9), ("b", 0.8), ("x", 0.8)],  # not a window
        ]
        for got in wrong:
            with self.assertRaises(AssertionError, msg=str(got)):
                check(self, "wrong", got, self.expected, 3)


class Engine:
    """Shared by both engines: runs each query in each mode and records the figures."""

    engine = ""
    modes = ()

    @classmethod
    def setUpClass(cls):
        if not DATA:
            raise unittest.SkipTest("PORTABLE_DATA is not set: run tests/engines/portable.test.mjs")
        cls.q = read("queries.json")
        cls.report = REPORT.setdefault(cls.engine, {})

    def run_mode(self, mode, search, scale=lambda q: 1.0):
        k = self.q["k"]
        exact, took = 0, 0.0
        for n, q in enumerate(self.q["queries"]):
            t0 = time.perf_counter()
            got = search(q, k)
            took += time.perf_counter() - t0
            exact += check(self, f"{self.engine} {mode}, query {n} ({q['text']!r})", got, q["expected"][mode], k, scale(q))
        self.report[mode] = {"queries": len(self.q["queries"]), "exactOrder": exact, "ms": round(1000 * took / len(self.q["queries"]), 2)}


class TestQdrant(Engine, unittest.TestCase):
    """qdrant-client's local mode (`QdrantClient(":memory:")`): the client's own in-process
    engine, Qdrant's API and scoring without a server."""

    engine = "qdrant"

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        from qdrant_client import QdrantClient, models

        cls.models = models
        t0 = time.perf_counter()
        cls.client = QdrantClient(":memory:")
        schema = read("schema-qdrant.json")
        cls.client.create_collection(
            "bge_m3",
            vectors_config={name: models.VectorParams(**v) for name, v in schema["vectors"].items()},
            sparse_vectors_config={name: models.SparseVectorParams(**v) for name, v in schema["sparse_vectors"].items()},
        )
        for batch in batches(jsonl("qdrant.jsonl"), 64):
            cls.client.upsert("bge_m3", points=[models.PointStruct(**p) for p in batch])
        cls.report["loadMs"] = round(1000 * (time.perf_counter() - t0))
        cls.report["points"] = cls.client.count("bge_m3", exact=True).count

    def search(self, using, query, k):
        # Local mode always searches exactly (a server: pass search_params=SearchParams(exact=True),
        # or make the collection with portableSchema(..., { exact: true })).
        hits = self.client.query_points("bge_m3", query=query, using=using, limit=k, with_payload=False).points
        return [(str(h.id), h.score) for h in hits]

    def test_dense(self):
        self.run_mode("dense", lambda q, k: self.search("dense", q["dense"], k))

    def test_sparse(self):
        sv = lambda q: self.models.SparseVector(indices=q["sparse"]["ids"], values=q["sparse"]["weights"])
        self.run_mode("sparse", lambda q, k: self.search("sparse", sv(q), k))

    def test_colbert(self):
        # Qdrant's MAX_SIM sums over the query's rows; FlagEmbedding's ColBERT score is the mean.
        rows = lambda q: [q["colbert"]["data"][r * q["colbert"]["dim"]:(r + 1) * q["colbert"]["dim"]] for r in range(q["colbert"]["rows"])]
        self.run_mode("colbert", lambda q, k: self.search("colbert", rows(q), k), scale=lambda q: 1 / q["colbert"]["rows"])

    def test_payload(self):
        # A point carries its document, window, span and text slice.
        first = next(jsonl("qdrant.jsonl"))
        [rec] = self.client.retrieve("bge_m3", ids=[first["id"]], with_payload=True, with_vectors=True)
        self.assertEqual(rec.payload, first["payload"])
        p = first["payload"]
        self.assertEqual(len(p["text"]), p["end"] - p["start"])
        self.assertEqual(len(rec.vector["colbert"]), len(first["vector"]["colbert"]))


class TestMilvus(Engine, unittest.TestCase):
    """Milvus Lite (`MilvusClient("file.db")` starts a local Milvus server process): Milvus' own
    engine (FLAT index for dense, SPARSE_INVERTED_INDEX for sparse, inner product)."""

    engine = "milvus"
    # pymilvus names of the REST v2 data types that portableSchema writes.
    TYPES = {"VarChar": "VARCHAR", "FloatVector": "FLOAT_VECTOR", "SparseFloatVector": "SPARSE_FLOAT_VECTOR", "Int64": "INT64", "JSON": "JSON"}

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        from pymilvus import DataType, MilvusClient

        t0 = time.perf_counter()
        cls.client = MilvusClient(os.path.join(DATA, "milvus.db"))
        spec = read("schema-milvus.json")
        cls.name = spec["collectionName"]
        schema = MilvusClient.create_schema(auto_id=spec["schema"]["autoId"], enable_dynamic_field=spec["schema"]["enableDynamicField"])
        for f in spec["schema"]["fields"]:
            kw = dict(f.get("elementTypeParams", {}))
            if f.get("isPrimary"):
                kw["is_primary"] = True
            if f.get("nullable"):
                kw["nullable"] = True
            schema.add_field(f["fieldName"], DataType[cls.TYPES[f["dataType"]]], **kw)
        index = cls.client.prepare_index_params()
        for i in spec["indexParams"]:
            index.add_index(i["fieldName"], index_name=i["indexName"], index_type=i["indexType"], metric_type=i["metricType"])
        cls.client.create_collection(cls.name, schema=schema, index_params=index)
        for batch in batches(jsonl("milvus.jsonl"), 128):
            for row in batch:
                # pymilvus reads a str given for a JSON field as JSON text.
                if isinstance(row["meta"], str):
                    row["meta"] = json.dumps(row["meta"])
            cls.client.insert(cls.name, batch)
        cls.client.load_collection(cls.name)
        cls.report["loadMs"] = round(1000 * (time.perf_counter() - t0))
        cls.report["points"] = cls.client.query(cls.name, filter="", output_fields=["count(*)"])[0]["count(*)"]

    @classmethod
    def tearDownClass(cls):
        cls.client.close()

    def search(self, field, query, k, params):
        [hits] = self.client.search(self.name, data=[query], anns_field=field, limit=k, search_params={"metric_type": "IP", "params": params})
        return [(h["id"], h["distance"]) for h in hits]

    def test_dense(self):
        self.run_mode("dense", lambda q, k: self.search("dense", q["dense"], k, {}))

    def test_sparse(self):
        sv = lambda q: {i: w for i, w in zip(q["sparse"]["ids"], q["sparse"]["weights"]) if w != 0}
        self.run_mode("sparse", lambda q, k: self.search("sparse", sv(q), k, {"drop_ratio_search": 0.0}))

    def test_payload(self):
        first = next(jsonl("milvus.jsonl"))
        [row] = self.client.get(self.name, ids=[first["id"]], output_fields=["doc_id", "window", "start", "end", "token_start", "token_end", "text", "meta"])
        for field in ["doc_id", "window", "start", "end", "token_start", "token_end", "text", "meta"]:
            self.assertEqual(row[field], first[field], field)


def tearDownModule():
    if DATA:
        with open(os.path.join(DATA, "report.json"), "w", encoding="utf-8") as f:
            json.dump(REPORT, f)


if __name__ == "__main__":
    unittest.main()
