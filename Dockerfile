# One image for both apps (and the built-in llama.cpp harness, CPU build). Build it with
#   docker build -t cortex-neuron .
# and run `node apps/cortex/dist/cli.js serve …` or `node apps/neuron/dist/cli.js serve …`.
# In a container the apps listen on 0.0.0.0, which is not loopback: a cortex.yaml needs
# admin_token and api_keys, a neuron.yaml its token, or the app refuses to start (exit 2; see
# deploy/compose/ for configs that have them, or set allow_unauthenticated: true on purpose).
# Stop it with SIGTERM (docker stop): it exits within shutdown_grace_ms plus a few seconds.
FROM node:20-bookworm-slim

# better-sqlite3 compiles from source; node-llama-cpp's prebuilt CPU binaries need nothing.
RUN apt-get update \
  && apt-get install -y --no-install-recommends python3 make g++ ca-certificates \
  && rm -rf /var/lib/apt/lists/*

WORKDIR /app
COPY . .
RUN npx -y pnpm@10.34.9 install --frozen-lockfile \
  && npx -y pnpm@10.34.9 build

ENV NODE_ENV=production
EXPOSE 31313 13131
CMD ["node", "apps/cortex/dist/cli.js", "serve", "--config", "/config/cortex.yaml"]
