# One image for both programs: `kas …` (the default) and `agentk …` (override the entrypoint).
# Node 24 runs the TypeScript sources directly (type stripping); only the dashboard is bundled (Vite).
FROM node:24-slim
WORKDIR /app
ENV NODE_ENV=production
COPY package.json package-lock.json ./
COPY web ./web
COPY protocol ./protocol
# The `node` devDependency pins Node for npm scripts on a developer's machine; the image already
# is Node 24. The dashboard is built with the dev dependencies (Vite), which then go: only the
# runtime dependencies stay.
RUN npm ci --include=dev --ignore-scripts && node web/build.ts && npm prune --omit=dev --ignore-scripts && npm cache clean --force
COPY bin ./bin
COPY server ./server
COPY agent ./agent
COPY otel ./otel
USER node
ENTRYPOINT ["node", "/app/bin/kas.ts"]
CMD ["serve"]
