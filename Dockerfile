# One image for both programs: `kas …` (the default) and `agentk …` (override the entrypoint).
# Node 24 runs the TypeScript sources directly (type stripping); only the dashboard is built.
#
#   docker build -t kas:0.1.0 .

# The dashboard, built with the dev dependencies (npm run build writes web/dist/).
FROM node:24-slim AS build
WORKDIR /src
COPY package.json package-lock.json ./
RUN npm ci --ignore-scripts
COPY . .
RUN npm run build

# The runtime dependencies alone. (The `node` devDependency pins Node for npm scripts on a
# developer's machine; the image already is Node 24.)
FROM node:24-slim AS deps
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --ignore-scripts && npm cache clean --force

# What runs: the programs' sources, their dependencies and the built dashboard; no tests,
# benchmarks, dashboard sources or build tools.
FROM node:24-slim
WORKDIR /app
ENV NODE_ENV=production
COPY --from=deps /app/node_modules ./node_modules
COPY package.json ./
COPY bin ./bin
COPY server ./server
COPY agent ./agent
COPY protocol ./protocol
COPY otel ./otel
COPY --from=build /src/web/dist ./web/dist
# Node's compile cache, warmed here with every source file (bin/*.js turn it on): both programs
# start without loading Node's TypeScript stripper, about 17 MB less resident each. Read-only at
# run time, which Node accepts.
ENV NODE_COMPILE_CACHE=/app/.compile-cache
RUN node --input-type=module -e 'const { readdirSync } = await import("node:fs"); const walk = (d) => readdirSync(d, { withFileTypes: true }).flatMap((e) => e.isDirectory() ? walk(d + "/" + e.name) : e.name.endsWith(".ts") ? [d + "/" + e.name] : []); for (const f of ["server", "agent", "protocol", "otel"].flatMap(walk)) await import("/app/" + f); process.exit(0)' \
 && node bin/kas.js --version && node bin/agentk.js --version
# The image's user `node` (uid 1000), as the Kubernetes manifests expect.
USER node
EXPOSE 8150 8151 8153 8155 8181
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 CMD ["node", "/app/bin/healthcheck.ts"]
ENTRYPOINT ["node", "/app/bin/kas.js"]
CMD ["serve"]
