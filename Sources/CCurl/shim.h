#ifndef SHIPYARD_CCURL_SHIM_H
#define SHIPYARD_CCURL_SHIM_H
#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>
#include <curl/curl.h>

/* curl_easy_setopt and curl_easy_getinfo are variadic, which Swift cannot call: one fixed-arity
   wrapper per argument type. */
static inline CURLcode shipyard_curl_set_long(CURL *curl, CURLoption option, long value) {
    return curl_easy_setopt(curl, option, value);
}

static inline CURLcode shipyard_curl_set_string(CURL *curl, CURLoption option, const char *value) {
    return curl_easy_setopt(curl, option, value);
}

static inline CURLcode shipyard_curl_set_pointer(CURL *curl, CURLoption option, void *value) {
    return curl_easy_setopt(curl, option, value);
}

static inline CURLcode shipyard_curl_set_slist(CURL *curl, CURLoption option, struct curl_slist *value) {
    return curl_easy_setopt(curl, option, value);
}

typedef size_t (*shipyard_curl_write_callback)(char *data, size_t size, size_t count, void *context);

static inline CURLcode shipyard_curl_set_write(CURL *curl, shipyard_curl_write_callback callback, void *context) {
    CURLcode rc = curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, callback);
    if (rc != CURLE_OK) return rc;
    return curl_easy_setopt(curl, CURLOPT_WRITEDATA, context);
}

static inline CURLcode shipyard_curl_set_write_header(CURL *curl, shipyard_curl_write_callback callback, void *context) {
    CURLcode rc = curl_easy_setopt(curl, CURLOPT_HEADERFUNCTION, callback);
    if (rc != CURLE_OK) return rc;
    return curl_easy_setopt(curl, CURLOPT_HEADERDATA, context);
}

/* The connection goes only to an address that was checked: libcurl's own name resolution or URL
   parsing may differ from the checks' (an IDN host, say), so the socket itself is refused for
   any other address. `allowed` is a NUL-separated, empty-string-terminated list of numeric
   addresses, owned by the caller until curl_easy_cleanup. */
static curl_socket_t shipyard_curl_open_checked(void *allowed, curlsocktype purpose, struct curl_sockaddr *address) {
    char text[INET6_ADDRSTRLEN + 1] = {0};
    (void)purpose;
    if (address->family == AF_INET) {
        inet_ntop(AF_INET, &((struct sockaddr_in *)&address->addr)->sin_addr, text, sizeof(text));
    } else if (address->family == AF_INET6) {
        inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&address->addr)->sin6_addr, text, sizeof(text));
    } else {
        return CURL_SOCKET_BAD;
    }
    for (const char *candidate = allowed; candidate && *candidate; candidate += strlen(candidate) + 1) {
        if (strcmp(candidate, text) == 0) return socket(address->family, address->socktype, address->protocol);
    }
    return CURL_SOCKET_BAD;
}

static inline CURLcode shipyard_curl_pin(CURL *curl, const char *allowed) {
    CURLcode rc = curl_easy_setopt(curl, CURLOPT_OPENSOCKETFUNCTION, shipyard_curl_open_checked);
    if (rc != CURLE_OK) return rc;
    return curl_easy_setopt(curl, CURLOPT_OPENSOCKETDATA, (void *)allowed);
}

static inline CURLcode shipyard_curl_get_long(CURL *curl, CURLINFO info, long *value) {
    return curl_easy_getinfo(curl, info, value);
}

static inline CURLcode shipyard_curl_get_string(CURL *curl, CURLINFO info, char **value) {
    return curl_easy_getinfo(curl, info, value);
}
#endif
