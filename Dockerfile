# syntax=docker/dockerfile:1
# Multi-stage build: a static kdbridge binary on a minimal, non-root runtime image.
FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
ARG COMMIT=unknown
RUN CGO_ENABLED=0 go build -trimpath \
      -ldflags "-s -w -X main.version=${VERSION} -X main.commit=${COMMIT}" \
      -o /out/kdbridge ./cmd/kdbridge \
 && mkdir -p /out/data

# distroless/static: CA certificates and tzdata, no shell, runs as uid 65532.
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/kdbridge /usr/local/bin/kdbridge
COPY --from=build --chown=65532:65532 /out/data /data
COPY config.example.yaml /etc/kdbridge/config.example.yaml
USER 65532:65532
ENV KDBRIDGE_CONFIG=/etc/kdbridge/config.yaml \
    KDBRIDGE_STATE_DIR=/data \
    KDBRIDGE_HTTP_LISTEN=0.0.0.0:9090 \
    KDBRIDGE_LOG_FORMAT=json
VOLUME ["/data"]
EXPOSE 9090
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
  CMD ["/usr/local/bin/kdbridge", "healthcheck"]
ENTRYPOINT ["/usr/local/bin/kdbridge"]
CMD ["run"]
