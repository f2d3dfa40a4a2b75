package main

// A device plugin that gives the test node N fake NVIDIA GPUs through the kubelet's real
// device-plugin API (k8s.io/kubelet/pkg/apis/deviceplugin/v1beta1). The kubelet's device manager
// then does what it does on a GPU node: advertises nvidia.com/gpu in the node's capacity, admits a
// pod only when a device is free, and calls Allocate for each container, whose answer sets
// NVIDIA_VISIBLE_DEVICES (as NVIDIA's plugin does) and DIAL_GPU_DEVICES in the container.

import (
	"context"
	"flag"
	"fmt"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	pluginapi "k8s.io/kubelet/pkg/apis/deviceplugin/v1beta1"
)

const gpuResource = "nvidia.com/gpu"

type gpuPlugin struct {
	pluginapi.UnimplementedDevicePluginServer
	devices []*pluginapi.Device
}

func (p *gpuPlugin) GetDevicePluginOptions(context.Context, *pluginapi.Empty) (*pluginapi.DevicePluginOptions, error) {
	return &pluginapi.DevicePluginOptions{}, nil
}

// ListAndWatch sends the device list once; the fake devices never change health.
func (p *gpuPlugin) ListAndWatch(_ *pluginapi.Empty, stream grpc.ServerStreamingServer[pluginapi.ListAndWatchResponse]) error {
	if err := stream.Send(&pluginapi.ListAndWatchResponse{Devices: p.devices}); err != nil {
		return err
	}
	<-stream.Context().Done()
	return nil
}

func (p *gpuPlugin) Allocate(_ context.Context, req *pluginapi.AllocateRequest) (*pluginapi.AllocateResponse, error) {
	resp := &pluginapi.AllocateResponse{}
	for _, c := range req.ContainerRequests {
		ids := strings.Join(c.DevicesIds, ",")
		resp.ContainerResponses = append(resp.ContainerResponses, &pluginapi.ContainerAllocateResponse{
			Envs: map[string]string{"NVIDIA_VISIBLE_DEVICES": ids, "DIAL_GPU_DEVICES": ids},
		})
	}
	return resp, nil
}

func (p *gpuPlugin) PreStartContainer(context.Context, *pluginapi.PreStartContainerRequest) (*pluginapi.PreStartContainerResponse, error) {
	return &pluginapi.PreStartContainerResponse{}, nil
}

func (p *gpuPlugin) GetPreferredAllocation(context.Context, *pluginapi.PreferredAllocationRequest) (*pluginapi.PreferredAllocationResponse, error) {
	return &pluginapi.PreferredAllocationResponse{}, nil
}

func runGPUDevicePlugin(args []string) int {
	fs := flag.NewFlagSet("gpu-device-plugin", flag.ExitOnError)
	count := fs.Int("count", 2, "number of fake nvidia.com/gpu devices")
	dir := fs.String("dir", pluginapi.DevicePluginPath, "the kubelet's device-plugin directory")
	_ = fs.Parse(args)
	p := &gpuPlugin{}
	for i := 0; i < *count; i++ {
		p.devices = append(p.devices, &pluginapi.Device{ID: fmt.Sprintf("dial-gpu-%d", i), Health: pluginapi.Healthy})
	}
	endpoint := "dial-gpu.sock"
	sock := filepath.Join(*dir, endpoint)
	if err := os.MkdirAll(*dir, 0o755); err != nil {
		fmt.Fprintf(os.Stderr, "gpu-device-plugin: %v\n", err)
		return 1
	}
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM, syscall.SIGINT)
	// Serve and register now, and again whenever the kubelet's socket is a new file: a starting
	// kubelet empties the directory (our socket with it), and a restarted one forgets its plugins.
	kubeletSock := filepath.Join(*dir, "kubelet.sock")
	var registered os.FileInfo
	var srv *grpc.Server
	defer func() {
		if srv != nil {
			srv.Stop()
		}
		_ = os.Remove(sock)
	}()
	for {
		if fi, err := os.Stat(kubeletSock); err == nil && (registered == nil || !os.SameFile(fi, registered)) {
			if srv != nil {
				srv.Stop()
			}
			srv, err = serve(p, sock)
			if err != nil {
				fmt.Fprintf(os.Stderr, "gpu-device-plugin: %v\n", err)
				return 1
			}
			if err := register(kubeletSock, endpoint); err != nil {
				fmt.Fprintf(os.Stderr, "gpu-device-plugin: register: %v (retrying)\n", err)
			} else {
				registered = fi
				fmt.Fprintf(os.Stderr, "gpu-device-plugin: registered %d x %s with %s\n", *count, gpuResource, kubeletSock)
			}
		}
		select {
		case <-stop:
			return 0
		case <-time.After(time.Second):
		}
	}
}

// serve starts the plugin's gRPC server on a fresh socket file.
func serve(p *gpuPlugin, sock string) (*grpc.Server, error) {
	_ = os.Remove(sock)
	lis, err := net.Listen("unix", sock)
	if err != nil {
		return nil, fmt.Errorf("listen %s: %w", sock, err)
	}
	srv := grpc.NewServer()
	pluginapi.RegisterDevicePluginServer(srv, p)
	go func() { _ = srv.Serve(lis) }()
	return srv, nil
}

func register(kubeletSock, endpoint string) error {
	conn, err := grpc.NewClient("unix://"+kubeletSock, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return err
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err = pluginapi.NewRegistrationClient(conn).Register(ctx, &pluginapi.RegisterRequest{
		Version: pluginapi.Version, Endpoint: endpoint, ResourceName: gpuResource,
	})
	return err
}
