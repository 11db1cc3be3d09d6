# One image for both programs: `kas …` (the default) and `agentk …` (override the entrypoint).
# Node 24 runs the TypeScript sources directly (type stripping); nothing is compiled.
FROM node:24-slim
WORKDIR /app
ENV NODE_ENV=production
COPY package.json package-lock.json ./
# The `node` devDependency pins Node for npm scripts on a developer's machine; the image already
# is Node 24, so only the runtime dependencies are installed.
RUN npm ci --omit=dev --ignore-scripts && npm cache clean --force
COPY bin ./bin
COPY server ./server
COPY agent ./agent
COPY protocol ./protocol
COPY otel ./otel
COPY web ./web
USER node
ENTRYPOINT ["node", "/app/bin/kas.ts"]
CMD ["serve"]
