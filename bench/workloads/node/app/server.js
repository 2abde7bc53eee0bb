// A small HTTP service: the app layer of the "node" bench workload.
const http = require("http");
const port = Number(process.env.PORT || 8080);
http.createServer((req, res) => {
  res.writeHead(200, { "content-type": "application/json" });
  res.end(JSON.stringify({ path: req.url, time: Date.now() }));
}).listen(port, () => console.log(`listening on ${port}`));
